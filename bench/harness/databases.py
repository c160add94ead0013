"""The benchmark databases: (re)creating them, loading the sources, preparing targets, checksums."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from harness import lineitem
from harness.config import MARIADB_DB, PG_SOURCE_DB, PG_TARGET_DB, Server

logger = logging.getLogger(__name__)
SOURCE_TABLE = "public.lineitem"


@dataclass(frozen=True)
class Fingerprint:
    """A table's row count and order-independent checksum (see :func:`harness.lineitem.checksum_sql`)."""

    rows: int
    checksum: Decimal


# -- connections ------------------------------------------------------------------------------


@contextmanager
def postgres(server: Server, database: str) -> Iterator[Any]:
    """An autocommit psycopg connection to ``database``."""
    import psycopg

    with psycopg.connect(
        host=server.host, port=server.port, user=server.user, password=server.password or None,
        dbname=database, autocommit=True,
    ) as conn:  # fmt: skip
        yield conn


@contextmanager
def mariadb(server: Server, database: str | None = None, local_infile: bool = False) -> Iterator[Any]:
    """An autocommit PyMySQL connection (``database`` None: no default database)."""
    import pymysql

    conn = pymysql.connect(
        host=server.host, port=server.port, user=server.user, password=server.password, database=database,
        autocommit=True, local_infile=local_infile, charset="utf8mb4",
    )  # fmt: skip
    try:
        yield conn
    finally:
        conn.close()


# -- set-up -----------------------------------------------------------------------------------


def recreate_postgres_databases(server: Server) -> None:
    """Drop and create the PostgreSQL source and target databases."""
    with postgres(server, "postgres") as conn:
        for name in (PG_SOURCE_DB, PG_TARGET_DB):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    logger.info("postgres: created %s and %s", PG_SOURCE_DB, PG_TARGET_DB)


def load_postgres_source(server: Server, csv_file: Path) -> int:
    """Create ``lineitem`` in the PostgreSQL source and COPY the CSV file into it; returns its rows."""
    started = time.perf_counter()
    with postgres(server, PG_SOURCE_DB) as conn:
        conn.execute(lineitem.postgres_ddl(SOURCE_TABLE))
        with conn.cursor() as cur:
            copy_sql = f"COPY {SOURCE_TABLE} ({lineitem.COLUMN_LIST}) FROM STDIN (FORMAT csv)"
            with cur.copy(copy_sql) as copy, csv_file.open("rb") as data:
                while block := data.read(1 << 20):
                    copy.write(block)
        # An incremental source indexes its cursor column; without it every run scans the whole table.
        conn.execute(f"CREATE INDEX lineitem_updated_at ON {SOURCE_TABLE} (updated_at)")
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {SOURCE_TABLE}")
        rows = conn.execute(f"SELECT count(*) FROM {SOURCE_TABLE}").fetchone()[0]
    logger.info("postgres: loaded %s rows into %s.%s in %.1f s", rows, PG_SOURCE_DB, SOURCE_TABLE,
                time.perf_counter() - started)  # fmt: skip
    return int(rows)


def load_mariadb_source(server: Server, csv_file: Path) -> int:
    """Re-create the MariaDB database, create ``lineitem`` and load the CSV file; returns its rows.

    Uses ``LOAD DATA LOCAL INFILE`` when the server allows it, else batched INSERTs.
    """
    started = time.perf_counter()
    with mariadb(server) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{MARIADB_DB}`")
        cur.execute(f"CREATE DATABASE `{MARIADB_DB}` CHARACTER SET utf8mb4")
    with mariadb(server, MARIADB_DB, local_infile=True) as conn, conn.cursor() as cur:
        cur.execute(lineitem.mariadb_ddl("lineitem"))
        cur.execute("SELECT @@GLOBAL.local_infile")
        if int(cur.fetchone()[0]):
            cur.execute(
                "LOAD DATA LOCAL INFILE %s INTO TABLE lineitem CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n' "
                f"({lineitem.COLUMN_LIST})",
                (str(csv_file),),
            )
            method = "LOAD DATA LOCAL INFILE"
        else:
            _insert_batches(cur, csv_file)
            method = "batched INSERT (local_infile is OFF)"
        cur.execute("ALTER TABLE lineitem ADD INDEX lineitem_updated_at (updated_at)")
        cur.execute("ANALYZE TABLE lineitem")
        cur.fetchall()
        cur.execute("SELECT count(*) FROM lineitem")
        rows = int(cur.fetchone()[0])
    logger.info("mariadb: loaded %s rows into %s.lineitem with %s in %.1f s", rows, MARIADB_DB, method,
                time.perf_counter() - started)  # fmt: skip
    return rows


def _insert_batches(cur: Any, csv_file: Path, batch: int = 5_000) -> None:
    import csv

    placeholders = ", ".join(["%s"] * len(lineitem.NAMES))
    sql = f"INSERT INTO lineitem ({lineitem.COLUMN_LIST}) VALUES ({placeholders})"
    with csv_file.open(newline="", encoding="utf-8") as data:
        rows: list[list[str]] = []
        for row in csv.reader(data):
            rows.append(row)
            if len(rows) >= batch:
                cur.executemany(sql, rows)
                rows = []
        if rows:
            cur.executemany(sql, rows)


# Aggregates both engines compute identically: a cheap cross-check that the two sources agree.
_AGGREGATES = (
    "SELECT count(*), sum(l_orderkey), sum(l_linenumber), sum(l_extendedprice), sum(l_quantity), "
    "sum(length(l_comment)), min(l_shipdate), max(updated_at) FROM lineitem"
)


def cross_check_sources(server_pg: Server, server_my: Server) -> None:
    """Raise if the MariaDB source does not hold the same rows as the PostgreSQL source (by aggregates)."""
    with postgres(server_pg, PG_SOURCE_DB) as conn:
        pg = tuple(conn.execute(_AGGREGATES).fetchone())
    with mariadb(server_my, MARIADB_DB) as conn, conn.cursor() as cur:
        cur.execute(_AGGREGATES)
        my = tuple(cur.fetchone())
    if tuple(map(str, pg)) != tuple(map(str, my)):
        raise RuntimeError(f"the MariaDB source differs from the PostgreSQL source: {my} != {pg}")
    logger.info("sources agree: %s rows, same sums in PostgreSQL and MariaDB", pg[0])


# -- targets ----------------------------------------------------------------------------------


def create_target(server: Server, table: str) -> None:
    """Create schema and ``table`` (the lineitem DDL) in the target database if missing."""
    schema = table.split(".")[0]
    with postgres(server, PG_TARGET_DB) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
        if not exists:
            conn.execute(lineitem.postgres_ddl(table))


def truncate_target(server: Server, table: str) -> None:
    """Empty ``table`` in the target database if it exists."""
    with postgres(server, PG_TARGET_DB) as conn:
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]:
            conn.execute(f"TRUNCATE TABLE {table}")


def drop_schema(server: Server, schema: str) -> None:
    """Drop ``schema`` and everything in it from the target database."""
    with postgres(server, PG_TARGET_DB) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def fingerprint(server: Server, database: str, table: str) -> Fingerprint:
    """Row count and checksum of ``table`` (lineitem's columns)."""
    with postgres(server, database) as conn:
        rows, checksum = conn.execute(lineitem.checksum_sql(table)).fetchone()
    return Fingerprint(int(rows), Decimal(checksum))


def row_count(server: Server, table: str) -> int | None:
    """Rows of ``table`` in the target database; None when the table does not exist."""
    with postgres(server, PG_TARGET_DB) as conn:
        if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]:
            return None
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def server_versions(server_pg: Server, server_my: Server) -> tuple[str, str]:
    with postgres(server_pg, "postgres") as conn:
        pg = str(conn.execute("SELECT version()").fetchone()[0]).split(" on ")[0]
    with mariadb(server_my) as conn, conn.cursor() as cur:
        cur.execute("SELECT version()")
        my = str(cur.fetchone()[0])
    return pg, (my if "mariadb" in my.lower() else f"MySQL {my}")


# -- the incremental change -------------------------------------------------------------------


def change_source(server: Server, round_no: int, percent: float) -> tuple[int, int]:
    """Insert ``percent``% new rows and update about ``percent``% of the rows in the PostgreSQL source.

    New and changed rows get ``updated_at`` = 2020-01-01 + ``round_no`` days: later than every
    generated value and than earlier rounds, earlier than now. Returns (inserted, updated).
    """
    stamp = datetime(2020, 1, 1) + timedelta(days=round_no)
    with postgres(server, PG_SOURCE_DB) as conn:
        total = int(conn.execute(f"SELECT count(*) FROM {SOURCE_TABLE}").fetchone()[0])
        wanted = max(1, round(total * percent / 100))
        shift = int(conn.execute(f"SELECT max(l_orderkey) FROM {SOURCE_TABLE}").fetchone()[0])
        others = ", ".join(lineitem.NAMES[1:-1])
        inserted = conn.execute(
            f"INSERT INTO {SOURCE_TABLE} ({lineitem.COLUMN_LIST}) "
            f"SELECT l_orderkey + %s, {others}, %s FROM {SOURCE_TABLE} ORDER BY l_orderkey, l_linenumber LIMIT %s",
            (shift, stamp, wanted),
        ).rowcount
        # about percent% of the orders (and so of the rows), a different slice each round
        modulus = max(1, round(100 / percent))
        updated = conn.execute(
            f"UPDATE {SOURCE_TABLE} SET l_quantity = l_quantity + 1, "
            f"l_comment = left(l_comment, 34) || ' upd ' || %s, updated_at = %s "
            f"WHERE l_orderkey %% %s = %s AND l_orderkey <= %s",
            (str(round_no), stamp, modulus, round_no % modulus, shift),
        ).rowcount
        conn.execute(f"ANALYZE {SOURCE_TABLE}")
    logger.info("source change %d (updated_at %s): %d rows inserted, %d updated", round_no, stamp, inserted, updated)
    return int(inserted), int(updated)
