-- sales_demo fact table: one row per order line, keyed by (order_id, line_number).
CREATE TABLE IF NOT EXISTS fact_order_lines (
    order_id      BIGINT        NOT NULL,
    line_number   INTEGER       NOT NULL,
    customer_id   BIGINT        NOT NULL,
    product_id    BIGINT        NOT NULL,
    order_date    DATE          NOT NULL,
    order_status  VARCHAR(20)   NOT NULL,
    quantity      INTEGER       NOT NULL,
    unit_price    NUMERIC(12,2) NOT NULL,
    line_amount   NUMERIC(14,2) NOT NULL,
    updated_at    TIMESTAMP     NOT NULL,
    PRIMARY KEY (order_id, line_number)
);

CREATE INDEX IF NOT EXISTS ix_fact_order_lines_order_date ON fact_order_lines (order_date);
