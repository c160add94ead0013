-- One row per order line; a change to the order or to the line moves the line's cursor.
SELECT
    l.order_id,
    l.line_number,
    o.customer_id,
    l.product_id,
    date(o.ordered_at)                       AS order_date,
    o.status                                 AS order_status,
    l.quantity,
    l.unit_price,
    round(l.quantity * l.unit_price, 2)      AS line_amount,
    max(o.updated_at, l.updated_at)          AS updated_at
FROM order_lines AS l
JOIN orders AS o ON o.order_id = l.order_id
