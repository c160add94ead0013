"""MariaDB -> PostgreSQL on the Arrow path with many rows: the read split into key ranges (gaps and
uneven density in the key), batches encoded (binary COPY, or CSV) in slices and written by a second thread.
Every row arrives exactly once, with its values, and the watermark is the source's max."""

from __future__ import annotations

import hashlib
import logging
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pymysql
import pytest

import connectors.mysql
import connectors.postgresql
from tests.conftest import run_cli
from tests.projects import write_project

BASE = datetime(2024, 1, 1)


def source_rows() -> list[tuple]:
    """About 12,000 rows; keys dense at first, then sparse, then a big gap, then dense again."""
    keys = [*range(1, 5_001), *range(5_001, 200_000, 37), *range(10_000_000, 10_002_000)]
    rows = []
    for n, key in enumerate(keys):
        name = None if n % 97 == 0 else ("" if n % 89 == 0 else f'name {key} "q" \\ é\nx')
        rows.append((key, name, Decimal(f"{key % 100000}.{n % 100:02d}"), BASE + timedelta(seconds=n, microseconds=n)))
    return rows


def digest(rows: list[tuple]) -> str:
    text = "\n".join("|".join("<NULL>" if v is None else str(v) for v in row) for row in sorted(rows))
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def arrow_project(mysql_url: str, pg_url: str, etl_home: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    rows = source_rows()
    database = mysql_url.rsplit("/", 1)[1]
    with pymysql.connect(host="127.0.0.1", user="root", password="", database=database, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE events (id BIGINT PRIMARY KEY, name VARCHAR(100), amount DECIMAL(12,2), "
                "updated_at DATETIME(6) NOT NULL)"
            )
            cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s)", rows)
    monkeypatch.setenv("ETL_CONN_SHOP", mysql_url)
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    # small pieces, batches and slices, so one load crosses every boundary many times
    monkeypatch.setattr(connectors.mysql, "PIECE_ROWS", 1_500)
    monkeypatch.setattr(connectors.postgresql, "CSV_SLICE_ROWS", 700)
    write_project(
        etl_home,
        "arrow_demo",
        """
        project: arrow_demo
        connections: {shop: {}}
        chunk_size: 1000
        ddl: [arrow_demo/001_events.sql]
        tables:
          - {target: events, source: {connection: shop, table: events}, strategy: merge, keys: [id], cursor: updated_at}
        """,
        ddl={
            "arrow_demo/001_events.sql": "CREATE TABLE events (id BIGINT PRIMARY KEY, name TEXT, "
            "amount NUMERIC(12,2), updated_at TIMESTAMP(6) NOT NULL);"
        },
    )
    return rows


@pytest.mark.parametrize(("pgpq", "path"), [(True, "binary"), (False, "csv")])
def test_many_rows_through_key_ranges_and_the_writer_thread(
    arrow_project: list[tuple],
    pg_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    pgpq: bool,
    path: str,
) -> None:
    """Binary COPY encoded from Arrow, and CSV (pgpq missing)."""
    if not pgpq:
        monkeypatch.setitem(sys.modules, "pgpq", None)  # import pgpq raises ImportError
    ranges: list[str] = []
    real_open = connectors.mysql.MysqlConnector._open

    def counting_open(self, sql: str, batch_size: int):
        ranges.append(sql)
        return real_open(self, sql, batch_size)

    monkeypatch.setattr(connectors.mysql.MysqlConnector, "_open", counting_open)
    with caplog.at_level(logging.INFO):
        result = run_cli("--project", "arrow_demo", "--load-type", "F")
    assert result.code == 0, result.stderr
    assert f"through Arrow -> COPY ({path})" in caplog.text
    assert len(ranges) >= 8  # about 12,000 rows in ranges of about 1,500

    with psycopg.connect(pg_url) as conn:
        loaded = conn.execute("SELECT id, name, amount, updated_at FROM events").fetchall()
        watermark = conn.execute(
            "SELECT data_max_date FROM etl_runs WHERE project = 'arrow_demo' AND status = 'success'"
        ).fetchone()
    assert len(loaded) == len(arrow_project) > 12_000
    assert digest(loaded) == digest(arrow_project)
    assert watermark == (str(max(r[3] for r in arrow_project)),)
