"""Runs in phases, as an orchestrator's tasks make them (``--steps``, ``--tables``), each recording the
orchestrator's run id in ``etl_runs``; and audit tables of an older version get that column."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import query, run_cli
from tests.projects import items_rows, sqlite_items, write_project

PROJECT = """
project: phases
connections:
  src:
    default: sqlite:///metadata/src.db
ddl: [phases/001_items.sql]
tables:
  - {target: items, source: {connection: src, table: items}, strategy: merge, keys: [id], cursor: updated_at}
  - {target: items_copy, source: {connection: src, table: items}, strategy: merge, keys: [id], cursor: updated_at}
checks:
  - {kind: row_count, table: items, min: 1}
aggregations:
  - {name: totals, file: phases/totals.sql}
"""
DDL = """
CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(100), amount NUMERIC(12,2), updated_at TIMESTAMP NOT NULL);
CREATE TABLE items_copy (id BIGINT PRIMARY KEY, name VARCHAR(100), amount NUMERIC(12,2), updated_at TIMESTAMP);
CREATE TABLE totals (n BIGINT);
"""
RUN_ID = "manual__2026-01-02T06:00:00+00:00"


def make(home: Path) -> None:
    write_project(home, "phases", PROJECT, ddl={"phases/001_items.sql": DDL})
    (home / "aggregations" / "phases").mkdir(parents=True)
    (home / "aggregations" / "phases" / "totals.sql").write_text(
        "DELETE FROM totals;\nINSERT INTO totals SELECT count(*) FROM items;\n", encoding="utf-8"
    )
    sqlite_items(home / "metadata" / "src.db", items_rows(5))


def test_the_phases_of_a_run_each_record_the_orchestrator_run_id(etl_home: Path, warehouse: str) -> None:
    make(etl_home)
    for args in (
        ["--steps", "prepare"],
        ["--steps", "load", "--tables", "items"],
        ["--steps", "load", "--tables", "items_copy"],
        ["--steps", "finish"],
    ):
        result = run_cli("--project", "phases", "--orchestrator-run-id", RUN_ID, *args)
        assert result.code == 0, (args, result.stderr)

    assert query(warehouse, "SELECT count(*) FROM items_copy") == [(5,)]
    assert query(warehouse, "SELECT n FROM totals") == [(5,)]
    runs = query(warehouse, "SELECT status, target_table, orchestrator_run_id FROM etl_runs ORDER BY run_id")
    assert runs == [
        ("success", None, RUN_ID),
        ("success", "items", RUN_ID),
        ("success", "items_copy", RUN_ID),
        ("success", None, RUN_ID),
    ]
    tasks = query(warehouse, "SELECT run_id, task_name FROM etl_task_runs ORDER BY task_run_id")
    assert [name for _, name in tasks] == [
        "warehouse_ddl",
        "load:items",
        "load:items_copy",  # the row_count check on items is its load's gate: it ran inside load:items
        "aggregate:totals",
    ]


def test_a_run_without_an_orchestrator_leaves_the_column_empty(etl_home: Path) -> None:
    make(etl_home)
    assert run_cli("--project", "phases").code == 0
    url = f"sqlite:///{etl_home / 'metadata' / 'warehouse.db'}"
    assert query(url, "SELECT orchestrator_run_id FROM etl_runs") == [(None,)]


def test_audit_tables_of_an_older_version_get_the_orchestrator_run_id_column(etl_home: Path) -> None:
    make(etl_home)
    database = etl_home / "metadata" / "warehouse.db"
    assert run_cli("--project", "phases").code == 0
    with sqlite3.connect(database) as conn:  # as an older version left it
        conn.execute("ALTER TABLE etl_runs DROP COLUMN orchestrator_run_id")

    result = run_cli("--project", "phases", "--orchestrator-run-id", RUN_ID)

    assert result.code == 0, result.stderr
    assert query(f"sqlite:///{database}", "SELECT orchestrator_run_id FROM etl_runs ORDER BY run_id") == [
        (None,),
        (RUN_ID,),
    ]
