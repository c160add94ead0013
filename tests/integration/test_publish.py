"""What a run publishes: a table's rows with its checks and watermark, reconciled, or nothing.

On SQLite and PostgreSQL (the ``warehouse`` fixture): a later failing task does not make an append
table load its window twice; an ``error`` check on a loaded table leaves it as it was (exit 4), a
``warn`` one commits; ``publish: run`` publishes nothing when its third table fails; reconciliation
catches a row lost in flight (PostgreSQL: a trigger that drops it); a precheck skips an empty window
without touching the table.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine

from tests.conftest import query, run_cli
from tests.projects import items_rows, sqlite_items, write_project

THREE_TABLES = """
project: pub
connections:
  src:
    default: sqlite:///metadata/src.db
publish: {publish}
ddl: [pub/001.sql]
tables:
  - {{target: events, source: {{connection: src, query: sql/items.sql}}, strategy: append, keys: [id],
     cursor: updated_at{extra}}}
  - {{target: items_copy, source: {{connection: src, query: sql/items.sql}}, strategy: merge, keys: [id],
     cursor: updated_at}}
  - {{target: third, source: {{connection: src, query: sql/third.sql}}, strategy: merge, keys: [id],
     cursor: updated_at}}
{tail}
"""
DDL = "\n".join(
    f"CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(100), amount NUMERIC(12,2), updated_at TIMESTAMP NOT NULL);"
    for t in ("events", "items_copy", "third")
)
ITEMS = "SELECT id, name, amount, updated_at FROM items"
TABLES = ("events", "items_copy", "third")


def project(home: Path, *, publish: str = "table", extra: str = "", tail: str = "") -> None:
    write_project(
        home,
        "pub",
        THREE_TABLES.format(publish=publish, extra=extra, tail=tail),
        files={"sql/items.sql": ITEMS, "sql/third.sql": ITEMS},
        ddl={"pub/001.sql": DDL},
    )


def counts(warehouse: str) -> dict[str, tuple[object, ...]]:
    return {t: query(warehouse, f"SELECT count(*), count(DISTINCT id) FROM {t}")[0] for t in TABLES}


def watermark(warehouse: str, table: str) -> str | None:
    rows = query(warehouse, "SELECT watermark FROM etl_table_state WHERE target_table = :t", t=table)
    return rows[0][0] if rows else None


def test_a_later_failing_task_does_not_make_an_append_table_load_twice(etl_home: Path, warehouse: str) -> None:
    """101 rows, an aggregation that fails after the loads, three runs: still 101 rows, 101 ids."""
    project(etl_home, tail="aggregations: [{name: broken, file: pub/broken.sql}]")
    (etl_home / "aggregations" / "pub").mkdir(parents=True)
    (etl_home / "aggregations" / "pub" / "broken.sql").write_text("UPDATE no_such_table SET x = 1;", encoding="utf-8")
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(101))

    for _ in range(3):
        result = run_cli("--project", "pub")
        assert result.code == 1 and "aggregate:broken" in result.stdout

    assert counts(warehouse)["events"] == (101, 101)
    assert watermark(warehouse, "events") == "2024-01-01 01:41:00"
    statuses = query(warehouse, "SELECT status FROM etl_task_runs WHERE task_name = 'load:events'")
    assert statuses == [("success",)] * 3, "each task row says what committed"
    assert query(warehouse, "SELECT DISTINCT status FROM etl_runs") == [("failed",)]


GATES = """
checks:
  - {kind: accepted_values, table: items_copy, column: name, values: [%s], severity: %s}
"""


def test_an_error_check_on_a_loaded_table_leaves_it_as_it_was_and_exits_4(etl_home: Path, warehouse: str) -> None:
    good = ", ".join(f"'item {i}'" for i in range(1, 11))
    project(etl_home, tail=GATES % (good, "error"))
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(10))
    assert run_cli("--project", "pub").code == 0
    before, mark = query(warehouse, "SELECT id, name FROM items_copy ORDER BY id"), watermark(warehouse, "items_copy")

    sqlite_items(etl_home / "metadata" / "src.db", [(11, "not accepted", "1.00", "2024-01-02 00:00:00")])
    result = run_cli("--project", "pub")

    assert result.code == 4
    assert "accepted_values_items_copy" in result.stdout
    assert query(warehouse, "SELECT id, name FROM items_copy ORDER BY id") == before
    assert watermark(warehouse, "items_copy") == mark, "the rolled-back load kept the old watermark"
    last = query(warehouse, "SELECT status, severity, failing_rows FROM etl_dq_results ORDER BY result_id DESC")
    assert last[0] == ("fail", "error", 1)
    assert counts(warehouse)["events"] == (11, 11), "the table loaded before the failing one committed"


def test_a_warn_check_on_a_loaded_table_commits_and_is_reported(etl_home: Path, warehouse: str) -> None:
    project(etl_home, tail=GATES % ("'item 1'", "warn"))
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(10))

    result = run_cli("--project", "pub")

    assert result.code == 0
    assert counts(warehouse)["items_copy"] == (10, 10)
    assert query(warehouse, "SELECT status, severity, failing_rows FROM etl_dq_results") == [("fail", "warn", 9)]


def test_publish_run_publishes_nothing_when_the_third_table_fails(etl_home: Path, warehouse: str) -> None:
    project(etl_home, publish="run")
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(10))
    assert run_cli("--project", "pub").code == 0
    before = counts(warehouse)
    marks = {t: watermark(warehouse, t) for t in TABLES}

    sqlite_items(etl_home / "metadata" / "src.db", items_rows(5, start_id=11, base=datetime(2024, 2, 1)))
    third = etl_home / "customer_code" / "pub" / "sql" / "third.sql"
    third.write_text("SELECT no_such_column FROM items", encoding="utf-8")
    result = run_cli("--project", "pub")

    assert result.code == 1
    assert counts(warehouse) == before, "the first two tables' loads were not published"
    assert {t: watermark(warehouse, t) for t in TABLES} == marks
    rows = query(
        warehouse, "SELECT task_name, status FROM etl_task_runs WHERE run_id = 2 AND task_kind = 'load' ORDER BY 1"
    )
    assert rows == [("load:events", "rolled_back"), ("load:items_copy", "rolled_back"), ("load:third", "failed")]

    third.write_text(ITEMS, encoding="utf-8")
    assert run_cli("--project", "pub").code == 0
    assert counts(warehouse) == dict.fromkeys(TABLES, (15, 15))


def test_reconciliation_catches_a_row_lost_in_flight(etl_home: Path, warehouse: str) -> None:
    """A trigger on the target drops the row with id 3: the source counts 5, the table holds 4."""
    project(etl_home, extra=", reconcile: {count: true, sums: [amount], min_max: [updated_at]}")
    sa_url = warehouse
    sqlite_items(etl_home / "metadata" / "src.db", [])
    assert run_cli("--project", "pub").code == 0  # the tables exist, empty
    if warehouse.startswith("sqlite"):
        statements = [
            "CREATE TRIGGER lose_a_row BEFORE INSERT ON events WHEN NEW.id = 3 BEGIN SELECT RAISE(IGNORE); END"
        ]
    else:
        statements = [
            "CREATE FUNCTION drop_three() RETURNS trigger AS $$ BEGIN IF NEW.id = 3 THEN RETURN NULL; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER lose_a_row BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION drop_three()",
        ]
    engine = create_engine(warehouse)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(5))

    result = run_cli("--project", "pub")

    assert result.code == 4
    assert "reconcile events count" in result.stdout
    assert query(sa_url, "SELECT count(*) FROM events") == [(0,)], "the load was rolled back"
    figures = query(
        sa_url,
        "SELECT check_name, status, source_value, target_value, difference FROM etl_dq_results "
        "WHERE check_kind = 'reconcile' AND run_id = 2 ORDER BY result_id",
    )
    assert figures[0] == ("reconcile_events_count", "fail", "5", "4", "-1")
    sums = next(f for f in figures if f[0] == "reconcile_events_sum_amount")
    assert sums[1] == "fail" and float(sums[2]) == 17.5 and float(sums[3]) == 14.0 and float(sums[4]) == -3.5
    assert figures[-1][:2] == ("reconcile_events_max_updated_at", "pass")


def test_reconciliation_that_agrees_records_its_figures_and_the_run_count(etl_home: Path, warehouse: str) -> None:
    project(etl_home, extra=", reconcile: {count: true, sums: [amount]}")
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(7))

    assert run_cli("--project", "pub").code == 0

    passed = query(warehouse, "SELECT count(*) FROM etl_dq_results WHERE check_kind = 'reconcile' AND status = 'pass'")
    assert passed == [(2,)]
    assert query(warehouse, "SELECT number_of_records, source_records FROM etl_runs") == [(21, 7)]


def test_a_precheck_skips_an_empty_window_without_touching_the_table(
    etl_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tables are locked by another session: a load that opened its transaction would wait for it."""
    project(
        etl_home,
        tail="precheck: true\nskip_when_no_data: true\naggregations: [{name: touch, file: pub/touch.sql}]",
    )
    (etl_home / "aggregations" / "pub").mkdir(parents=True)
    (etl_home / "aggregations" / "pub" / "touch.sql").write_text("UPDATE events SET name = name;", encoding="utf-8")
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    sa_url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(5))
    assert run_cli("--project", "pub").code == 0

    locked, release = threading.Event(), threading.Event()

    def hold_the_tables() -> None:
        with psycopg.connect(pg_url) as conn:
            conn.execute("LOCK TABLE events, items_copy, third IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(60)

    holder = threading.Thread(target=hold_the_tables)
    holder.start()
    locked.wait(10)
    try:
        result = run_cli("--project", "pub")
    finally:
        release.set()
        holder.join()

    assert result.code == 0, result.stderr
    assert "1 skipped (no new data)" in result.stdout
    messages = query(sa_url, "SELECT task_name, status, message FROM etl_task_runs WHERE run_id = 2 ORDER BY 1")
    assert ("load:events", "success", "no new data (precheck: 0 rows in the window)") in messages
    assert ("aggregate:touch", "skipped", "skipped: no table had new rows (skip_when_no_data)") in messages
