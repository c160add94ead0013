"""The demo project end to end, on the embedded SQLite warehouse and on the real PostgreSQL."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from tests.conftest import query, run_cli


def source_rows(home: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(home / "metadata" / "sales_demo" / "source.db") as conn:
        return conn.execute(sql, params).fetchall()


def test_full_then_incremental_loads_only_new_and_changed_rows(warehouse: str, demo_home: Path) -> None:
    first = run_cli("--project", "sales_demo", "--load-type", "F")
    assert first.code == 0, first.stderr
    assert "sales_demo: SUCCESS" in first.stdout and "output    metadata/output/sales_demo/daily_sales_" in first.stdout
    lines_after_first = query(warehouse, "SELECT count(*) FROM fact_order_lines")[0][0]
    assert lines_after_first == source_rows(demo_home, "SELECT count(*) FROM order_lines")[0][0]

    second = run_cli("--project", "sales_demo")
    assert second.code == 0, second.stderr

    runs = query(
        warehouse,
        "SELECT run_id, status, load_type, data_max_date, previous_max_date, number_of_records "
        "FROM etl_runs ORDER BY run_id",
    )
    assert [(r[1], r[2]) for r in runs] == [("success", "F"), ("success", "I")]
    tasks = query(
        warehouse,
        "SELECT run_id, target_table, strategy, rows, window_start, data_max_date, previous_max_date "
        "FROM etl_task_runs WHERE task_kind = 'load' ORDER BY run_id, task_run_id",
    )
    first_fact = next(t for t in tasks if t[0] == runs[0][0] and t[1] == "fact_order_lines")
    second_fact = next(t for t in tasks if t[0] == runs[1][0] and t[1] == "fact_order_lines")
    assert first_fact[2] == "replace" and second_fact[2] == "merge"
    # The second run starts exactly at the first run's data_max_date for that table...
    assert second_fact[4] == first_fact[5] == second_fact[6]
    # ...and loads exactly the source lines whose cursor moved past it: the new day and the updated orders.
    changed = source_rows(
        demo_home,
        "SELECT count(*) FROM order_lines l JOIN orders o USING (order_id) WHERE max(o.updated_at, l.updated_at) > ?",
        first_fact[5],
    )[0][0]
    assert second_fact[3] == changed and 0 < changed < lines_after_first
    assert runs[1][5] == sum(t[3] for t in tasks if t[0] == runs[1][0])
    # The warehouse now equals the source, with no duplicate keys.
    assert query(warehouse, "SELECT count(*), count(DISTINCT order_id * 100 + line_number) FROM fact_order_lines")[
        0
    ] == ((source_rows(demo_home, "SELECT count(*) FROM order_lines")[0][0],) * 2)
    cancelled_source = source_rows(demo_home, "SELECT count(*) FROM orders WHERE status = 'cancelled'")[0][0]
    cancelled_target = query(
        warehouse, "SELECT count(DISTINCT order_id) FROM fact_order_lines WHERE order_status = 'cancelled'"
    )
    assert cancelled_target[0][0] == cancelled_source


def test_rerunning_the_same_window_does_not_duplicate_rows(warehouse: str, demo_home: Path) -> None:
    assert run_cli("--project", "sales_demo", "--load-type", "F").code == 0
    window = ("--start-date", "2024-01-20", "--end-date", "2024-02-10")
    assert run_cli("--project", "sales_demo", *window).code == 0
    counts = query(warehouse, "SELECT count(*) FROM fact_order_lines")
    assert run_cli("--project", "sales_demo", "--load-type", "F", *window).code == 0
    # F with a window replaces that window only; the simulation added one more day in between.
    total = source_rows(demo_home, "SELECT count(*) FROM order_lines WHERE updated_at <= '2024-02-10'")[0][0]
    after = query(
        warehouse, "SELECT count(*) FROM fact_order_lines WHERE updated_at <= :end", end="2024-02-10 00:00:00"
    )
    assert after[0][0] == total
    assert query(warehouse, "SELECT count(*) FROM fact_order_lines")[0][0] >= counts[0][0]


def test_outputs_logs_and_audit_paths(warehouse: str, demo_home: Path) -> None:
    result = run_cli("--project", "sales_demo", "--load-type", "F")
    assert result.code == 0
    outputs = sorted((demo_home / "metadata" / "output" / "sales_demo").glob("daily_sales_*.csv"))
    assert len(outputs) == 1 and not list(outputs[0].parent.glob("*.partial"))
    with open(outputs[0], newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["sales_date", "orders", "order_lines", "quantity", "revenue"]
    assert len(rows) - 1 == query(warehouse, "SELECT count(*) FROM agg_daily_sales")[0][0] > 0
    logs_ = list((demo_home / "metadata" / "logs" / "sales_demo").glob("sales_demo_*.log"))
    assert len(logs_) == 1 and "task load:fact_order_lines: done" in logs_[0].read_text(encoding="utf-8")
    log_file, output_files, version, env = query(
        warehouse, "SELECT log_file, output_files, script_version, environment FROM etl_runs"
    )[0]
    assert log_file == str(logs_[0]) and output_files == str(outputs[0])
    assert version.startswith("0.1.0") and env == "local"
    dq = query(warehouse, "SELECT check_name, status FROM etl_dq_results ORDER BY result_id")
    assert [s for _, s in dq] == ["pass"] * 4


def test_dry_run_prints_the_plan_and_touches_nothing(demo_home: Path) -> None:
    result = run_cli("--project", "sales_demo", "--dry-run")
    assert result.code == 0, result.stderr
    assert "3. load:dim_customer  [load]" in result.stdout
    assert "WHERE src.updated_at > ? AND src.updated_at <= ?" in result.stdout
    assert "window_start=datetime.datetime(2024, 1, 1, 0, 0)" in result.stdout
    assert not (demo_home / "metadata" / "warehouse.db").exists()
    assert not (demo_home / "metadata" / "sales_demo").exists()
    assert not (demo_home / "metadata" / "logs").exists()


def test_list_shows_projects_and_tables(demo_home: Path) -> None:
    result = run_cli("--list")
    assert result.code == 0
    assert "sales_demo  Demo shop" in result.stdout
    assert "  fact_order_lines  <- sales_src: sql/order_lines.sql  (merge)" in result.stdout
