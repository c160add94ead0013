"""The watermark through whole runs: a backfill of an old window (explicit dates) never moves it
backwards, so the next plain incremental run neither re-reads nor appends twice; and audit tables
created by an older version (without the ``watermark`` column) are upgraded in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine

from script_factory import audit
from tests.conftest import query, run_cli
from tests.projects import items_rows, sqlite_items, write_project

# No primary key: an append that re-read rows would duplicate them silently.
PROJECT = """
project: events_demo
connections:
  src:
    default: sqlite:///metadata/src.db
ddl: [events_demo/001_items.sql]
tables:
  - {target: items, source: {connection: src, table: items}, strategy: append, cursor: updated_at}
"""
DDL = "CREATE TABLE items (id BIGINT, name VARCHAR(100), amount NUMERIC(12,2), updated_at TIMESTAMP NOT NULL);"


def test_a_backfill_never_moves_the_watermark_back(etl_home: Path, warehouse: str) -> None:
    write_project(etl_home, "events_demo", PROJECT, ddl={"events_demo/001_items.sql": DDL})
    source = etl_home / "metadata" / "src.db"
    sqlite_items(source, items_rows(10))  # updated_at 2024-01-01 00:01 ... 00:10
    assert run_cli("--project", "events_demo").code == 0

    backfill = run_cli("--project", "events_demo", "--start-date", "2024-01-01T00:02", "--end-date", "2024-01-01T00:05")
    assert backfill.code == 0, backfill.stderr
    sqlite_items(source, items_rows(2, start_id=11))  # 00:11 and 00:12
    assert run_cli("--project", "events_demo").code == 0

    assert query(warehouse, "SELECT count(*), count(DISTINCT id) FROM items") == [(12, 12)]
    runs = query(
        warehouse,
        "SELECT window_start, data_max_date, watermark, rows FROM etl_task_runs "
        "WHERE task_kind = 'load' ORDER BY run_id",
    )
    assert runs == [
        ("1900-01-01 00:00:00", "2024-01-01 00:10:00", "2024-01-01 00:10:00", 10),  # initial_start
        ("2024-01-01 00:02:00", "2024-01-01 00:05:00", "2024-01-01 00:10:00", 3),  # the backfill keeps 00:10
        ("2024-01-01 00:10:00", "2024-01-01 00:12:00", "2024-01-01 00:12:00", 2),  # resumes after 00:10
    ]


def test_audit_tables_of_an_older_version_get_the_watermark_column(etl_home: Path) -> None:
    database = etl_home / "metadata" / "warehouse.db"
    write_project(etl_home, "events_demo", PROJECT, ddl={"events_demo/001_items.sql": DDL})
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(10))
    assert run_cli("--project", "events_demo").code == 0
    with sqlite3.connect(database) as conn:  # as an older version left it: no watermark column
        conn.execute("ALTER TABLE etl_task_runs DROP COLUMN watermark")

    sqlite_items(etl_home / "metadata" / "src.db", items_rows(1, start_id=11))
    result = run_cli("--project", "events_demo")

    assert result.code == 0, result.stderr
    url = f"sqlite:///{database}"
    # the legacy row's data_max_date served as the watermark: only the new row was read
    assert query(url, "SELECT count(*), count(DISTINCT id) FROM items") == [(11, 11)]
    assert query(url, "SELECT watermark FROM etl_task_runs WHERE task_kind = 'load' ORDER BY run_id") == [
        (None,),
        ("2024-01-01 00:11:00",),
    ]
    engine = create_engine(url)
    try:
        audit.ensure_tables(engine)  # idempotent once upgraded
    finally:
        engine.dispose()
