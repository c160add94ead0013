-- Daily sales from the fact table, cancelled orders excluded. Rebuilt whole in one transaction:
-- readers see the old rows until the new ones are committed.
DELETE FROM agg_daily_sales;

INSERT INTO agg_daily_sales (sales_date, orders, order_lines, quantity, revenue)
SELECT
    order_date,
    COUNT(DISTINCT order_id),
    COUNT(*),
    SUM(quantity),
    SUM(line_amount)
FROM fact_order_lines
WHERE order_status <> 'cancelled'
GROUP BY order_date;
