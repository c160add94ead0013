"""The benchmark databases: (re)creating them, loading the sources, preparing targets, checksums."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from harness.config import MARIADB_DB, PG_CLONE_DB, PG_SOURCE_DB, PG_TARGET_DB, Server
from harness.datasets import Dataset

logger = logging.getLogger(__name__)


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
    """Drop and create the PostgreSQL source and target databases (and drop pgcopydb clone's target)."""
    with postgres(server, "postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_CLONE_DB}" WITH (FORCE)')
        for name in (PG_SOURCE_DB, PG_TARGET_DB):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    logger.info("postgres: created %s and %s", PG_SOURCE_DB, PG_TARGET_DB)


def recreate_database(server: Server, name: str) -> None:
    """Drop and create one PostgreSQL database (a tool that wants a fresh target gets one per run)."""
    with postgres(server, "postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def load_postgres_source(server: Server, data: Dataset, csv_file: Path) -> int:
    """Create the dataset's table in the PostgreSQL source and COPY the CSV file into it; returns its rows."""
    started = time.perf_counter()
    table = data.source_table
    null = f", NULL '{data.csv_null}'" if data.csv_null else ""
    with postgres(server, PG_SOURCE_DB) as conn:
        conn.execute(data.postgres_ddl(table))
        with conn.cursor() as cur:
            copy_sql = f"COPY {table} ({data.column_list}) FROM STDIN (FORMAT csv{null})"
            with cur.copy(copy_sql) as copy, csv_file.open("rb") as file:
                while block := file.read(1 << 20):
                    copy.write(block)
        # An incremental source indexes its cursor column; without it every run scans the whole table.
        conn.execute(f"CREATE INDEX {data.table}_updated_at ON {table} (updated_at)")
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    logger.info("postgres: loaded %s rows into %s.%s in %.1f s", rows, PG_SOURCE_DB, table,
                time.perf_counter() - started)  # fmt: skip
    return int(rows)


def table_bytes(server: Server, table: str) -> int:
    """``pg_table_size`` of ``table`` in the PostgreSQL source (for pgcopydb's split threshold)."""
    with postgres(server, PG_SOURCE_DB) as conn:
        return int(conn.execute("SELECT pg_table_size(%s::regclass)", (table,)).fetchone()[0])


def load_mariadb_source(server: Server, data: Dataset, csv_file: Path) -> int:
    """Re-create the MariaDB database, create the dataset's table and load the CSV file; returns its rows.

    Uses ``LOAD DATA LOCAL INFILE`` when the server allows it, else batched INSERTs.
    """
    started = time.perf_counter()
    with mariadb(server) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{MARIADB_DB}`")
        cur.execute(f"CREATE DATABASE `{MARIADB_DB}` CHARACTER SET utf8mb4")
    with mariadb(server, MARIADB_DB, local_infile=True) as conn, conn.cursor() as cur:
        table = data.table
        cur.execute(data.mariadb_ddl(table))
        cur.execute("SELECT @@GLOBAL.local_infile")
        if int(cur.fetchone()[0]):
            # An unquoted NULL is NULL (with ENCLOSED BY); every text value of a file with NULLs is quoted.
            cur.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n' "
                f"({data.column_list})",
                (str(csv_file),),
            )
            method = "LOAD DATA LOCAL INFILE"
            cur.execute("SHOW WARNINGS")
            warnings = cur.fetchall()
            if warnings:
                raise RuntimeError(f"MariaDB LOAD DATA warned (the source would differ): {warnings[:5]}")
        else:
            _insert_batches(cur, data, csv_file)
            method = "batched INSERT (local_infile is OFF)"
        cur.execute(f"ALTER TABLE {table} ADD INDEX {table}_updated_at (updated_at)")
        cur.execute(f"ANALYZE TABLE {table}")
        cur.fetchall()
        cur.execute(f"SELECT count(*) FROM {table}")
        rows = int(cur.fetchone()[0])
    logger.info("mariadb: loaded %s rows into %s.%s with %s in %.1f s", rows, MARIADB_DB, table, method,
                time.perf_counter() - started)  # fmt: skip
    return rows


def _insert_batches(cur: Any, data: Dataset, csv_file: Path, batch: int = 5_000) -> None:
    import csv

    placeholders = ", ".join(["%s"] * len(data.names))
    sql = f"INSERT INTO {data.table} ({data.column_list}) VALUES ({placeholders})"
    null = data.csv_null
    with csv_file.open(newline="", encoding="utf-8") as file:
        rows: list[list[str | None]] = []
        for row in csv.reader(file):
            # the file never holds the text "NULL" as a value, so the word is NULL here, quoted or not
            rows.append([None if null is not None and v == null else v for v in row])
            if len(rows) >= batch:
                cur.executemany(sql, rows)
                rows = []
        if rows:
            cur.executemany(sql, rows)


def cross_check_sources(server_pg: Server, server_my: Server, data: Dataset) -> None:
    """Raise if the MariaDB source does not hold the same rows as the PostgreSQL source (by aggregates)."""
    with postgres(server_pg, PG_SOURCE_DB) as conn:
        pg = data.normalise_aggregates(tuple(conn.execute(data.aggregates_sql("pg")).fetchone()))
    with mariadb(server_my, MARIADB_DB) as conn, conn.cursor() as cur:
        cur.execute(data.aggregates_sql("mariadb"))
        my = data.normalise_aggregates(tuple(cur.fetchone()))
    if pg != my:
        raise RuntimeError(f"the MariaDB source differs from the PostgreSQL source: {my} != {pg}")
    logger.info("sources agree: %s rows, same sums in PostgreSQL and MariaDB", pg[0])


# -- targets ----------------------------------------------------------------------------------


def create_target(server: Server, data: Dataset, table: str) -> None:
    """Create schema and ``table`` (the dataset's DDL) in the target database if missing."""
    schema = table.split(".")[0]
    with postgres(server, PG_TARGET_DB) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
        if not exists:
            conn.execute(data.postgres_ddl(table))


def truncate_target(server: Server, table: str) -> None:
    """Empty ``table`` in the target database if it exists."""
    with postgres(server, PG_TARGET_DB) as conn:
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]:
            conn.execute(f"TRUNCATE TABLE {table}")


def drop_schema(server: Server, schema: str) -> None:
    """Drop ``schema`` and everything in it from the target database."""
    with postgres(server, PG_TARGET_DB) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def fingerprint(server: Server, database: str, data: Dataset, table: str) -> Fingerprint:
    """Row count and checksum of ``table`` (the dataset's columns)."""
    with postgres(server, database) as conn:
        rows, checksum = conn.execute(data.checksum_sql(table)).fetchone()
    return Fingerprint(int(rows), Decimal(checksum))


def row_count(server: Server, table: str, database: str = PG_TARGET_DB) -> int | None:
    """Rows of ``table`` in ``database``; None when the table does not exist."""
    with postgres(server, database) as conn:
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


def change_source(server: Server, data: Dataset, round_no: int, percent: float) -> tuple[int, int]:
    """Insert ``percent``% new rows and update about ``percent``% of the rows in the PostgreSQL source.

    New and changed rows get ``updated_at`` = the dataset's change base + ``round_no`` days: later than
    every generated value and than earlier rounds, earlier than now. Returns (inserted, updated).
    """
    stamp = data.change_base + timedelta(days=round_no)
    with postgres(server, PG_SOURCE_DB) as conn:
        inserted, updated = data.change(conn, data.source_table, round_no, percent, stamp)
        conn.execute(f"ANALYZE {data.source_table}")
    logger.info("source change %d (updated_at %s): %d rows inserted, %d updated", round_no, stamp, inserted, updated)
    return inserted, updated
