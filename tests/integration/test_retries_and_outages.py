"""The runner's retry loop, and what a run says and records when a server goes away under it.

* A step that raises TransientError once, then succeeds: 2 attempts recorded, exit 0, the back-off
  waited. A step that keeps failing: exit 1 with the last error, every attempt recorded.
* A source whose server drops the connection mid-load: the retry names the source, not the warehouse,
  and the retried load leaves no duplicate.
* The warehouse going away mid-run and coming back: the failed task is counted, the error is one line,
  and every audit row is closed as soon as the warehouse answers again, within the run's retries.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import query, run_cli
from tests.fakes.tcp_proxy import proxy_to
from tests.projects import items_project, items_rows, sqlite_items, write_project

FLAKY_WORKER = """
import json
import time
from pathlib import Path

from utilities.errors import TransientError


def flaky(ctx, *, fail_times: int, journal: str) -> None:
    path = Path(journal)
    calls = json.loads(path.read_text()) if path.exists() else []
    calls.append(time.monotonic())
    path.write_text(json.dumps(calls))
    if len(calls) <= fail_times:
        raise TransientError(f"the server hiccupped (call {len(calls)})")
"""


def flaky_project(home: Path, fail_times: int) -> Path:
    journal = home / "calls.json"
    items_project(
        home,
        extra=f"""
        retries: {{attempts: 3, backoff_seconds: 0.3}}
        before_load:
          - function: flaky
            params: {{fail_times: {fail_times}, journal: "{journal}"}}
        """,
    )
    (home / "customer_code" / "items_demo" / "script_worker.py").write_text(FLAKY_WORKER, encoding="utf-8")
    sqlite_items(home / "metadata" / "src.db", items_rows(5))
    return journal


def calls(journal: Path) -> list[float]:
    import json

    return json.loads(journal.read_text())


def test_a_step_that_fails_once_then_succeeds_takes_two_attempts_and_exits_0(etl_home: Path, warehouse: str) -> None:
    journal = flaky_project(etl_home, fail_times=1)

    result = run_cli("--project", "items_demo", "--load-type", "F")

    assert result.code == 0, result.stderr
    assert (
        "before_load:flaky: attempt 1 of 3 failed (the server hiccupped (call 1)); retrying in 0.3 s" in result.stderr
    )
    rows = query(warehouse, "SELECT status, attempts FROM etl_task_runs WHERE task_name = 'before_load:flaky'")
    assert rows == [("success", 2)]
    assert query(warehouse, "SELECT count(*) FROM items") == [(5,)]
    first, second = calls(journal)
    assert second - first >= 0.3, "the back-off is waited"


def test_a_step_that_keeps_failing_exits_1_with_the_last_error_after_every_attempt(
    etl_home: Path, warehouse: str
) -> None:
    journal = flaky_project(etl_home, fail_times=99)

    result = run_cli("--project", "items_demo", "--load-type", "F")

    assert result.code == 1
    assert "error     the server hiccupped (call 3)" in result.stdout
    assert "tasks     1 ok, 1 failed (before_load:flaky)" in result.stdout
    task = query(warehouse, "SELECT status, attempts, error_message FROM etl_task_runs WHERE task_kind = 'function'")
    assert task == [("failed", 3, "the server hiccupped (call 3)")]
    assert query(warehouse, "SELECT status, error_message FROM etl_runs") == [
        ("failed", "the server hiccupped (call 3)")
    ]
    assert query(warehouse, "SELECT count(*) FROM etl_task_runs WHERE task_kind = 'load'") == [(0,)]
    gaps = [b - a for a, b in zip(calls(journal), calls(journal)[1:], strict=False)]
    assert len(gaps) == 2 and gaps[0] >= 0.3 and gaps[1] >= 0.6, f"back-off 0.3 s then 0.6 s, got {gaps}"


def test_a_source_that_drops_mid_load_is_named_and_the_retry_leaves_no_duplicate(
    etl_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL -> PostgreSQL (COPY pass-through): the source backend is terminated while COPY runs."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE src_items AS SELECT i AS id, 'name ' || i AS name FROM generate_series(1, 400000) i")
    write_project(
        etl_home,
        "drop",
        """
        project: drop
        connections: {src: {}}
        retries: {attempts: 2, backoff_seconds: 0.1}
        ddl: [drop/001.sql]
        tables:
          - {target: items, source: {connection: src, table: src_items}, strategy: replace}
        """,
        ddl={"drop/001.sql": "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);"},
    )
    monkeypatch.setenv("ETL_CONN_SRC", pg_url)
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    killed: list[int] = []

    def terminate_the_source_copy() -> None:
        deadline = time.monotonic() + 30
        with psycopg.connect(pg_url, autocommit=True) as admin:
            while not killed and time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT%TO STDOUT%' AND pid <> "
                    "pg_backend_pid()"
                ).fetchone()
                if row:
                    admin.execute("SELECT pg_terminate_backend(%s)", row)
                    killed.append(row[0])
                time.sleep(0.005)

    killer = threading.Thread(target=terminate_the_source_copy)
    killer.start()
    result = run_cli("--project", "drop", "--load-type", "F")
    killer.join()

    assert killed, "the source's COPY was never seen running"
    assert result.code == 0, result.stderr
    warning = next(line for line in result.stderr.splitlines() if "attempt 1 of 2 failed" in line)
    assert "PostgreSQL connection 'src'" in warning and "'warehouse'" not in warning
    sa_url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    assert query(sa_url, "SELECT count(*), count(DISTINCT id) FROM items") == [(400000, 400000)]
    assert query(sa_url, "SELECT attempts FROM etl_task_runs WHERE task_name = 'load:items'") == [(2,)]


OUTAGE_WORKER = """
from tests.fakes.tcp_proxy import PROXIES


def pull_the_plug(ctx, *, port: int, seconds: float) -> None:
    PROXIES[port].cut(seconds)
"""


def test_the_warehouse_going_away_mid_run_is_counted_said_in_one_line_and_closed_when_it_returns(
    etl_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retries of 1 s then 2 s: the closing of the pulled task's row gives up at 3 s, the next task cannot
    start (3 s .. 6 s), and the warehouse is back at 6.5 s, when the run's own row is being closed."""
    with proxy_to(5432) as proxy:
        items_project(
            etl_home,
            extra=f"""
            retries: {{attempts: 3, backoff_seconds: 1}}
            after_load:
              - function: pull_the_plug
                params: {{port: {proxy.port}, seconds: 6.5}}
            aggregations:
              - {{name: totals, file: items_demo/totals.sql}}
            """,
        )
        (etl_home / "customer_code" / "items_demo" / "script_worker.py").write_text(OUTAGE_WORKER, encoding="utf-8")
        totals = etl_home / "aggregations" / "items_demo" / "totals.sql"
        totals.parent.mkdir(parents=True)
        totals.write_text("UPDATE items SET name = name WHERE id < 0;", encoding="utf-8")
        sqlite_items(etl_home / "metadata" / "src.db", items_rows(5))
        monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url.replace(":5432/", f":{proxy.port}/"))

        result = run_cli("--project", "items_demo", "--load-type", "F")

    assert proxy.refused > 0, "the warehouse really was away"
    assert result.code == 1
    assert "tasks     3 ok, 1 failed (aggregate:totals)" in result.stdout
    error = next(line for line in result.stdout.splitlines() if line.startswith("  error"))
    assert "record the start of task aggregate:totals" in error and "sqlalche.me" not in error
    assert "Traceback" not in result.stderr
    sa_url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    assert query(sa_url, "SELECT status FROM etl_runs") == [("failed",)]
    assert query(sa_url, "SELECT task_name, status FROM etl_task_runs ORDER BY task_run_id") == [
        ("warehouse_ddl", "success"),
        ("load:items", "success"),
        ("after_load:pull_the_plug", "success"),
    ]
    assert query(sa_url, "SELECT count(*) FROM etl_task_runs WHERE status = 'running'") == [(0,)]
