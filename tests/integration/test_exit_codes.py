"""Every exit code from a real case: 0, 1 (task failed), 2 (bad input, nothing connects), 3 (locked),
4 (a quality check of severity error failed)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.projects import items_project, items_rows, sqlite_items, write_project


def warehouse_rows(home: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(home / "metadata" / "warehouse.db") as conn:
        return conn.execute(sql).fetchall()


def assert_nothing_touched(home: Path) -> None:
    assert not (home / "metadata" / "warehouse.db").exists()
    assert not (home / "metadata" / "logs").exists()


@pytest.fixture
def items_home(etl_home: Path) -> Path:
    items_project(etl_home)
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(10))
    return etl_home


def test_exit_0_on_success(items_home: Path) -> None:
    result = run_cli("--project", "items_demo")
    assert result.code == 0
    assert warehouse_rows(items_home, "SELECT count(*) FROM items") == [(10,)]


@pytest.mark.parametrize(
    ("args", "edit", "expected"),
    [
        (["--project", "no_such_project"], None, "unknown project 'no_such_project'"),
        (["--project", "items_demo", "--load-type", "Z"], None, "'Z' is not a load type"),
        (["--project", "items_demo", "--start-date", "31/01/2026"], None, "'31/01/2026' is not an ISO date"),
        (
            ["--project", "items_demo", "--start-date", "2026-02-01", "--end-date", "2026-01-01"],
            None,
            "--start-date 2026-02-01 00:00:00 must be before --end-date 2026-01-01 00:00:00",
        ),
        (
            ["--project", "items_demo", "--start-date", "2999-01-01"],
            None,
            "--start-date 2999-01-01 00:00:00 is not befo",
        ),
        (["--project", "items_demo", "--start-date", "2026-01-31+02:00"], None, "'2026-01-31+02:00' is not an ISO"),
        (["--project", "items_demo"], ("strategy: merge", "strategy: [merge"), "invalid YAML"),
        (["--project", "items_demo"], ("sql/items.sql}", "sql/missing.sql}"), "sql/missing.sql not found"),
        (["--project", "items_demo"], ("connection: src,", "connection: erp,"), "unknown connection 'erp'"),
        (
            ["--project", "items_demo"],
            ("    default: sqlite:///metadata/src.db\n", ""),
            "connection 'src' has no URL; set ETL_CONN_SRC",
        ),
        (["--project", "items_demo", "--env", "prod"], None, "--env prod: file"),
    ],
)
def test_exit_2_on_bad_input_with_one_line_and_nothing_touched(
    items_home: Path, args: list[str], edit: tuple[str, str] | None, expected: str
) -> None:
    if edit is not None:
        path = items_home / "customer_code" / "items_demo" / "project.yml"
        text = path.read_text(encoding="utf-8")
        assert edit[0] in text
        path.write_text(text.replace(edit[0], edit[1]), encoding="utf-8")
    result = run_cli(*args)
    assert result.code == 2
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("script_runner.py: error: ")
    assert result.stdout == ""
    assert_nothing_touched(items_home)


def test_exit_2_when_a_connection_variable_is_missing_and_nothing_connects(
    etl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(
        etl_home,
        "pg_only",
        """
        project: pg_only
        connections:
          erp: {}
        tables:
          - {target: items, source: {connection: erp, table: items}, strategy: replace}
    """,
    )
    result = run_cli("--project", "pg_only")
    assert result.code == 2
    assert "connection 'erp' has no URL; set ETL_CONN_ERP" in result.stderr
    assert_nothing_touched(etl_home)


def test_exit_1_when_a_task_fails_and_the_watermark_does_not_move(items_home: Path) -> None:
    assert run_cli("--project", "items_demo").code == 0
    sqlite_items(items_home / "metadata" / "src.db", items_rows(5, start_id=11))
    query_file = items_home / "customer_code" / "items_demo" / "sql" / "items.sql"
    query_file.write_text("SELECT id, name, amount, updated_at FROM itemz", encoding="utf-8")
    failed = run_cli("--project", "items_demo")
    assert failed.code == 1
    assert "FAILED" in failed.stdout and "no such table: itemz" in failed.stdout
    runs = warehouse_rows(items_home, "SELECT status, error_message, data_max_date FROM etl_runs ORDER BY run_id")
    assert runs[0][0] == "success" and runs[1][0] == "failed" and "no such table: itemz" in runs[1][1]
    assert runs[1][2] is None
    assert warehouse_rows(items_home, "SELECT count(*) FROM items") == [(10,)]
    # Fixed, the next run starts from the last SUCCESSFUL watermark and loads the 5 new rows.
    query_file.write_text("SELECT id, name, amount, updated_at FROM items", encoding="utf-8")
    assert run_cli("--project", "items_demo").code == 0
    last = warehouse_rows(
        items_home, "SELECT rows, previous_max_date FROM etl_task_runs ORDER BY task_run_id DESC LIMIT 1"
    )
    assert last == [(5, "2024-01-01 00:10:00")]
    assert warehouse_rows(items_home, "SELECT count(*) FROM items") == [(15,)]


HOLD_LOCK = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from script_factory.lock import ProjectLock
with ProjectLock(Path(sys.argv[2]), sys.argv[3]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_exit_3_when_another_live_run_holds_the_lock(items_home: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(REPO), str(items_home / "metadata" / "locks"), "items_demo"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = run_cli("--project", "items_demo")
    finally:
        holder.kill()
        holder.wait()
    assert result.code == 3
    assert f"project items_demo is already running by pid {holder.pid}" in result.stderr
    assert result.stderr.count("\n") == 1
    assert_nothing_touched(items_home)


def test_exit_4_when_an_error_check_fails_and_later_tasks_do_not_run(etl_home: Path) -> None:
    items_project(
        etl_home,
        extra="""
        checks:
          - {kind: not_null, table: items, columns: [name]}
          - {kind: row_count, table: items, max: 1, severity: warn}
        outputs:
          - {name: items_out, query: sql/items.sql}
    """,
    )
    sqlite_items(etl_home / "metadata" / "src.db", [*items_rows(3), (99, None, "1", "2024-01-02 00:00:00")])
    result = run_cli("--project", "items_demo")
    assert result.code == 4
    assert "1 quality check(s) failed: not_null_items (1 row(s) with NULL in name)" in result.stdout
    dq = warehouse_rows(etl_home, "SELECT check_name, severity, status, failing_rows FROM etl_dq_results ORDER BY 1")
    assert dq == [("not_null_items", "error", "fail", 1), ("row_count_items", "warn", "fail", 1)]
    assert warehouse_rows(etl_home, "SELECT status FROM etl_runs") == [("failed",)]
    assert not (etl_home / "metadata" / "output").exists()
