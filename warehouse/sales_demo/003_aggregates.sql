-- sales_demo aggregate, rebuilt by aggregations/sales_demo/daily_sales.sql after each load.
CREATE TABLE IF NOT EXISTS agg_daily_sales (
    sales_date   DATE          PRIMARY KEY,
    orders       INTEGER       NOT NULL,
    order_lines  INTEGER       NOT NULL,
    quantity     INTEGER       NOT NULL,
    revenue      NUMERIC(14,2) NOT NULL
);
