-- The benchmark target: 11 mixed columns (numeric, text with newlines, timestamps, NULLs), its key
-- and an index on the cursor, as bench/incremental_merge.py builds the source.
CREATE SCHEMA IF NOT EXISTS merge_6m;

CREATE TABLE IF NOT EXISTS merge_6m.sales (
    id          bigint        PRIMARY KEY,
    customer_id integer       NOT NULL,
    region      text          NOT NULL,
    product     text          NOT NULL,
    quantity    integer       NOT NULL,
    unit_price  numeric(12,2) NOT NULL,
    amount      numeric(14,4),
    discount    numeric(5,4),
    note        text,
    sold_at     timestamp     NOT NULL,
    updated_at  timestamp     NOT NULL
);

CREATE INDEX IF NOT EXISTS sales_updated_at ON merge_6m.sales (updated_at);
