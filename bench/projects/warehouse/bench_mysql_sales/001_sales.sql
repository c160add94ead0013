-- The benchmark target: the sales table with the types of bench/harness/sales.py and its key: the same
-- DDL as the other approaches' targets (harness.sales.postgres_ddl), so every approach maintains the same index.
CREATE SCHEMA IF NOT EXISTS mysrc_ours;

CREATE TABLE IF NOT EXISTS mysrc_ours.sales (
    id            bigint           NOT NULL,
    customer_id   integer          NOT NULL,
    customer_name varchar(60),
    region        char(2)          NOT NULL,
    note          text,
    quantity      integer          NOT NULL,
    unit_price    numeric(12,2)    NOT NULL,
    discount      double precision,
    sold_on       date             NOT NULL,
    is_paid       boolean          NOT NULL,
    updated_at    timestamp        NOT NULL,
    PRIMARY KEY (id)
);
