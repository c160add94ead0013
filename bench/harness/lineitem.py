"""The benchmark table: TPC-H lineitem plus an ``updated_at`` cursor, as PostgreSQL and MariaDB DDL."""

from __future__ import annotations

# (name, PostgreSQL type, MariaDB type) in the order of the generated CSV file.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("l_orderkey", "bigint", "BIGINT"),
    ("l_partkey", "integer", "INT"),
    ("l_suppkey", "integer", "INT"),
    ("l_linenumber", "integer", "INT"),
    ("l_quantity", "numeric(15,2)", "DECIMAL(15,2)"),
    ("l_extendedprice", "numeric(15,2)", "DECIMAL(15,2)"),
    ("l_discount", "numeric(15,2)", "DECIMAL(15,2)"),
    ("l_tax", "numeric(15,2)", "DECIMAL(15,2)"),
    ("l_returnflag", "char(1)", "CHAR(1)"),
    ("l_linestatus", "char(1)", "CHAR(1)"),
    ("l_shipdate", "date", "DATE"),
    ("l_commitdate", "date", "DATE"),
    ("l_receiptdate", "date", "DATE"),
    ("l_shipinstruct", "char(25)", "CHAR(25)"),
    ("l_shipmode", "char(10)", "CHAR(10)"),
    ("l_comment", "varchar(44)", "VARCHAR(44)"),
    ("updated_at", "timestamp", "DATETIME"),
)
KEYS = ("l_orderkey", "l_linenumber")
NAMES = tuple(name for name, _, _ in COLUMNS)
COLUMN_LIST = ", ".join(NAMES)


def postgres_ddl(table: str) -> str:
    """``CREATE TABLE`` for PostgreSQL (``table`` may be schema-qualified; it comes from the harness only)."""
    body = ",\n    ".join(f"{name} {pg_type} NOT NULL" for name, pg_type, _ in COLUMNS)
    return f"CREATE TABLE {table} (\n    {body},\n    PRIMARY KEY ({', '.join(KEYS)})\n)"


def mariadb_ddl(table: str) -> str:
    """``CREATE TABLE`` for MariaDB (InnoDB, utf8mb4)."""
    body = ",\n    ".join(f"{name} {my_type} NOT NULL" for name, _, my_type in COLUMNS)
    return (
        f"CREATE TABLE {table} (\n    {body},\n    PRIMARY KEY ({', '.join(KEYS)})\n)"
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )


def checksum_sql(table: str) -> str:
    """Row count and an order-independent checksum of every column, in PostgreSQL.

    Each row is rendered as the text of ``ROW(columns...)`` in the canonical column order and hashed
    with ``hashtextextended``; the hashes are summed as numeric (no overflow). Equal counts and sums
    mean the same multiset of rows, up to a 64-bit hash collision.
    """
    return f"SELECT count(*), coalesce(sum(hashtextextended(ROW({COLUMN_LIST})::text, 0)), 0) FROM {table}"
