"""The real MariaDB as a source, into SQLite and into PostgreSQL, with every load strategy."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import run_cli
from tests.projects import write_project

PROJECT = """
project: maria_demo
connections:
  shop: {}
ddl: [maria_demo/001_events.sql]
tables:
  - {target: events_merge, source: {connection: shop, table: events}, strategy: merge, keys: [id], cursor: updated_at}
  - {target: events_append, source: {connection: shop, query: sql/new_events.sql}, strategy: append, cursor: updated_at}
  - {target: events_window, source: {connection: shop, table: events}, strategy: delete_insert, cursor: updated_at}
  - {target: events_all, source: {connection: shop, table: events}, strategy: replace}
"""
DDL = "\n".join(
    f"CREATE TABLE {name} (id BIGINT{' PRIMARY KEY' if pk else ''}, name VARCHAR(100), "
    f"amount NUMERIC(14,4), updated_at TIMESTAMP(6) NOT NULL);"
    for name, pk in (("events_merge", True), ("events_append", False), ("events_window", False), ("events_all", True))
)
ROWS = [
    (1, "ünïcödé ✓", Decimal("12.3456"), datetime(2024, 1, 1, 8, 0, 0, 123456)),
    (2, "two", Decimal("-0.0001"), datetime(2024, 1, 1, 9, 0, 0)),
    (3, None, Decimal("99999.9999"), datetime(2024, 1, 2, 10, 0, 0, 1)),
]


def maria(url: str) -> pymysql.connections.Connection:
    database = url.rsplit("/", 1)[1]
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=database, autocommit=True)


@pytest.fixture
def shop(mysql_url: str, etl_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    with maria(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE events (id BIGINT PRIMARY KEY, name VARCHAR(100), amount DECIMAL(14,4), "
            "updated_at DATETIME(6) NOT NULL)"
        )
        cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s)", ROWS)
    monkeypatch.setenv("ETL_CONN_SHOP", mysql_url)
    write_project(
        etl_home,
        "maria_demo",
        PROJECT,
        files={"sql/new_events.sql": "SELECT * FROM events"},
        ddl={"maria_demo/001_events.sql": DDL},
    )
    return mysql_url


def table(url: str, name: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT id, name, amount, updated_at FROM {name} ORDER BY id, updated_at"))
            return [
                (r[0], r[1], Decimal(str(r[2])), r[3] if isinstance(r[3], datetime) else datetime.fromisoformat(r[3]))
                for r in rows
            ]
    finally:
        engine.dispose()


def test_every_strategy_from_mariadb(shop: str, warehouse: str) -> None:
    assert run_cli("--project", "maria_demo", "--load-type", "F").code == 0
    for name in ("events_merge", "events_append", "events_window", "events_all"):
        assert table(warehouse, name) == ROWS, name

    with maria(shop) as conn, conn.cursor() as cur:
        cur.execute("UPDATE events SET name = 'two, updated', updated_at = '2024-01-03 00:00:00' WHERE id = 2")
        cur.execute("INSERT INTO events VALUES (4, 'four', 4, '2024-01-03 12:00:00.5')")
    result = run_cli("--project", "maria_demo")
    assert result.code == 0, result.stderr

    updated = [
        ROWS[0],
        (2, "two, updated", Decimal("-0.0001"), datetime(2024, 1, 3)),
        ROWS[2],
        (4, "four", Decimal("4.0000"), datetime(2024, 1, 3, 12, 0, 0, 500000)),
    ]
    assert table(warehouse, "events_merge") == updated
    assert table(warehouse, "events_all") == updated
    # append and delete_insert add the rows whose cursor moved past the watermark (id 2 again, id 4).
    assert table(warehouse, "events_append") == sorted([*ROWS, updated[1], updated[3]])
    assert table(warehouse, "events_window") == sorted([*ROWS, updated[1], updated[3]])

    # Re-running the same explicit window twice changes nothing and duplicates nothing.
    window = ("--start-date", "2024-01-02T12:00:00", "--end-date", "2024-01-04")
    assert run_cli("--project", "maria_demo", *window).code == 0
    snapshot = {name: table(warehouse, name) for name in ("events_merge", "events_append", "events_window")}
    assert run_cli("--project", "maria_demo", *window).code == 0
    assert {name: table(warehouse, name) for name in snapshot} == snapshot
    assert snapshot["events_append"] == sorted([*ROWS, updated[1], updated[3]])
