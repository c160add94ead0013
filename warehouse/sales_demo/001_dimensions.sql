-- sales_demo dimensions. Portable DDL: runs as is on PostgreSQL and SQLite.
CREATE TABLE IF NOT EXISTS dim_customer (
    customer_id  BIGINT       PRIMARY KEY,
    name         VARCHAR(200) NOT NULL,
    email        VARCHAR(200),
    country      VARCHAR(2),
    created_at   TIMESTAMP,
    updated_at   TIMESTAMP    NOT NULL
);

CREATE TABLE IF NOT EXISTS dim_product (
    product_id   BIGINT        PRIMARY KEY,
    name         VARCHAR(200)  NOT NULL,
    category     VARCHAR(50),
    unit_price   NUMERIC(12,2),
    updated_at   TIMESTAMP     NOT NULL
);
