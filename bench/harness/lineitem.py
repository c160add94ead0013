"""The benchmark table: TPC-H lineitem plus an ``updated_at`` cursor, as PostgreSQL and MariaDB DDL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

TABLE = "lineitem"
CSV_NULL = None  # the CSV file has no NULLs
CHANGE_BASE = datetime(2020, 1, 1)  # later than every generated updated_at

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


def aggregates_sql(engine: str) -> str:
    """Aggregates both engines compute identically: a cheap cross-check that the two sources agree."""
    return (
        "SELECT count(*), sum(l_orderkey), sum(l_linenumber), sum(l_extendedprice), sum(l_quantity), "
        "sum(length(l_comment)), min(l_shipdate), max(updated_at) FROM lineitem"
    )


def normalise_aggregates(row: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(map(str, row))


def change(conn: Any, table: str, round_no: int, percent: float, stamp: datetime) -> tuple[int, int]:
    """Insert ``percent``% new rows and update about ``percent``% of the rows of ``table`` (PostgreSQL)."""
    total = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    wanted = max(1, round(total * percent / 100))
    shift = int(conn.execute(f"SELECT max(l_orderkey) FROM {table}").fetchone()[0])
    others = ", ".join(NAMES[1:-1])
    inserted = conn.execute(
        f"INSERT INTO {table} ({COLUMN_LIST}) "
        f"SELECT l_orderkey + %s, {others}, %s FROM {table} ORDER BY l_orderkey, l_linenumber LIMIT %s",
        (shift, stamp, wanted),
    ).rowcount
    # about percent% of the orders (and so of the rows), a different slice each round
    modulus = max(1, round(100 / percent))
    updated = conn.execute(
        f"UPDATE {table} SET l_quantity = l_quantity + 1, "
        f"l_comment = left(l_comment, 34) || ' upd ' || %s, updated_at = %s "
        f"WHERE l_orderkey %% %s = %s AND l_orderkey <= %s",
        (str(round_no), stamp, modulus, round_no % modulus, shift),
    ).rowcount
    return int(inserted), int(updated)
