"""``parallel: N``: tables loading at once, on a PostgreSQL and a SQLite warehouse, from a real PostgreSQL
source. The same rows and audit rows as a serial run; a failing table in the middle (with and without
continue_on_error); a relationships gate that waits for its table; SIGTERM during parallel loads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import REPO, query, run_cli
from tests.projects import write_project

TABLES = [f"t{i}" for i in range(8)]
ROWS = 3000
PROJECT = """
project: par
connections: {{src: {{}}}}
parallel: {parallel}
continue_on_error: {continue_on_error}
defaults: {{strategy: merge, keys: [id], cursor: updated_at, source: {{connection: src}}}}
tables:
{tables}
checks:
  - {{kind: relationships, table: t5, column: ref, to: t1, field: id}}
"""


def source_tables(url: str, rows: int, tables: list[str] = TABLES) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA src")
        for name in tables:
            conn.execute(
                f"CREATE TABLE src.{name} AS SELECT i AS id, 'row ' || i || E'\\n\\t\"x\"' AS label, "
                f"(i * 0.01)::numeric(14,2) AS amount, i % 50 + 1 AS ref, "
                f"timestamp '2024-01-01' + i * interval '1 second' AS updated_at FROM generate_series(1, {rows}) i"
            )
            conn.execute(f"ALTER TABLE src.{name} ADD PRIMARY KEY (id)")


def project(home: Path, parallel: int, continue_on_error: bool = False, broken: str | None = None) -> None:
    entries = []
    for name in TABLES:
        source = "{query: sql/broken.sql}" if name == broken else f"{{table: src.{name}}}"
        entries.append(f"  - {{target: {name}, source: {source}}}")
    yml = PROJECT.format(parallel=parallel, continue_on_error=str(continue_on_error).lower(), tables="\n".join(entries))
    write_project(home, "par", yml, files={"sql/broken.sql": "SELECT id, no_such_column FROM src.t0"})


@pytest.fixture
def source(pg_url: str, warehouse: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Eight source tables in PostgreSQL (the warehouse's own database when it is PostgreSQL)."""
    source_tables(pg_url, ROWS)
    monkeypatch.setenv("ETL_CONN_SRC", pg_url)
    return warehouse


def exists(url: str, table: str) -> bool:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        return inspect(engine).has_table(table)
    finally:
        engine.dispose()


def state(url: str) -> dict[str, Any]:
    """Each table's rows, and the load rows of the last run (status, rows, watermark)."""
    (run_id,) = query(url, "SELECT max(run_id) FROM etl_runs")[0]
    tasks = query(
        url,
        "SELECT task_name, status, rows, watermark, data_max_date FROM etl_task_runs "
        "WHERE run_id = :r AND task_kind = 'load' ORDER BY task_name",
        r=run_id,
    )
    tables = {t: query(url, f"SELECT id, label, amount, updated_at FROM {t} ORDER BY id") for t in TABLES}
    marks = query(url, "SELECT target_table, watermark FROM etl_table_state WHERE project = 'par' ORDER BY 1")
    return {"tasks": tasks, "tables": tables, "marks": marks}


def test_four_at_once_leave_the_same_rows_and_audit_rows_as_one_at_a_time(source: str, etl_home: Path) -> None:
    project(etl_home, parallel=1)
    serial = run_cli("--project", "par", "--load-type", "F")
    assert serial.code == 0, serial.stderr
    one_at_a_time = state(source)

    project(etl_home, parallel=4)
    plan = run_cli("--project", "par", "--dry-run")
    assert "parallel: 4: up to 4 of 8 tables load at once" in plan.stdout
    assert "load:t5 after load:t1 (relationships checks)" in plan.stdout
    at_once = run_cli("--project", "par", "--load-type", "F")
    assert at_once.code == 0, at_once.stderr
    assert state(source) == one_at_a_time
    assert [row[1:3] for row in one_at_a_time["tasks"]] == [("success", ROWS)] * 8
    for table in TABLES:  # every line of a load names its table
        assert f"[{table}] task load:{table}: started" in at_once.stderr
        assert f"[{table}] load {table} <- src" in at_once.stderr
    starts = [line for line in at_once.stderr.splitlines() if "task load:t" in line and ": started" in line]
    t1_done = next(i for i, line in enumerate(at_once.stderr.splitlines()) if "task load:t1: done" in line)
    t5_start = next(i for i, line in enumerate(at_once.stderr.splitlines()) if "task load:t5: started" in line)
    assert len(starts) == 8 and t1_done < t5_start  # t5's relationships gate reads t1: it waits for t1
    if source.startswith("sqlite"):
        assert "the loads using warehouse one at a time" in at_once.stderr


def test_a_failing_table_stops_the_tables_not_started_and_leaves_each_table_whole(source: str, etl_home: Path) -> None:
    project(etl_home, parallel=2, broken="t3")
    result = run_cli("--project", "par", "--load-type", "F")
    assert result.code == 1, result.stderr
    assert "load:t3 failed: not starting" in result.stderr
    rows = dict(query(source, "SELECT task_name, status FROM etl_task_runs WHERE task_kind = 'load'"))
    assert rows["load:t3"] == "failed"
    assert "load:t7" not in rows  # never started: no row, as after a failure in a serial run
    assert set(rows.values()) == {"success", "failed"}  # the loads that had started finished, each whole
    for table in TABLES:  # each target is created by its load, in its transaction: whole, or not there
        if rows.get(f"load:{table}") == "success":
            assert query(source, f"SELECT count(*) FROM {table}") == [(ROWS,)], table
        else:
            assert not exists(source, table), table
    assert query(source, "SELECT status FROM etl_runs")[0][0] == "failed"


def test_with_continue_on_error_the_other_tables_load(source: str, etl_home: Path) -> None:
    project(etl_home, parallel=3, continue_on_error=True, broken="t3")
    result = run_cli("--project", "par", "--load-type", "F")
    assert result.code == 1, result.stderr
    rows = dict(query(source, "SELECT task_name, status FROM etl_task_runs WHERE task_kind = 'load'"))
    assert rows == {f"load:{t}": "failed" if t == "t3" else "success" for t in TABLES}
    for table in set(TABLES) - {"t3"}:
        assert query(source, f"SELECT count(*) FROM {table}")[0][0] == ROWS
    assert query(source, "SELECT count(*) FROM etl_task_runs WHERE status = 'running'")[0][0] == 0


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("parallel: 0", "parallel: input should be greater than or equal to 1, got 0"),
        ("parallel: 33", "parallel: input should be less than or equal to 32, got 33"),
        ("parallel: 2\npublish: run", "parallel: 2: publish: run puts every load in one transaction"),
    ],
)
def test_a_bad_parallel_is_one_line_and_exit_2(etl_home: Path, extra: str, expected: str) -> None:
    table = "{target: t, source: {connection: warehouse, table: s}, strategy: replace}"
    yml = f"project: bad\n{extra}\ntables:\n  - {table}\n"
    write_project(etl_home, "bad", yml)
    result = run_cli("--project", "bad", "--dry-run")
    assert result.code == 2
    assert expected in result.stderr and "error" not in result.stderr.split(expected)[1], result.stderr


BIG = 400_000


def test_sigterm_during_parallel_loads_rolls_every_running_table_back(etl_home: Path, pg_url: str) -> None:
    names = ["b0", "b1", "b2", "b3"]
    source_tables(pg_url, BIG, names)
    yml = "project: big\nconnections: {src: {}}\nparallel: 4\ntables:\n" + "".join(
        f"  - {{target: {n}, source: {{connection: src, table: src.{n}}}, strategy: replace, keys: [id]}}\n"
        for n in names
    )
    write_project(etl_home, "big", yml)
    env = {**os.environ, "ETL_HOME": str(etl_home), "ETL_CONN_SRC": pg_url, "ETL_CONN_WAREHOUSE": pg_url}
    env["ETL_PROGRESS_SECONDS"] = "0.1"
    argv = [sys.executable, str(REPO / "script_runner.py"), "--project", "big", "--load-type", "F"]
    victim = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    logs = etl_home / "metadata" / "logs" / "big"
    deadline = time.monotonic() + 60
    while not any("rows so far" in p.read_text() for p in logs.glob("*.log")) if logs.is_dir() else True:
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()
        time.sleep(0.02)
    victim.send_signal(signal.SIGTERM)
    _, err = victim.communicate(timeout=120)
    assert victim.returncode == 130, err
    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    tasks = dict(query(url, "SELECT task_name, status FROM etl_task_runs WHERE task_kind = 'load'"))
    assert query(url, "SELECT status, error_message FROM etl_runs") == [("failed", "interrupted (Ctrl-C or SIGTERM)")]
    assert "failed" in tasks.values(), f"no load was running at the SIGTERM: {tasks}"
    for name in names:  # each table complete with its state, or rolled back (not even created)
        status = tasks.get(f"load:{name}")
        exists = query(url, "SELECT to_regclass(:n) IS NOT NULL", n=name)[0][0]
        count = query(url, f"SELECT count(*) FROM {name}")[0][0] if exists else 0
        assert (status, count) in (("success", BIG), ("failed", 0), (None, 0)), f"{name}: {status}, {count} rows"
    assert query(url, "SELECT count(*) FROM etl_task_runs WHERE status = 'running'")[0][0] == 0
