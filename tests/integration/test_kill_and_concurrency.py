"""A run killed with SIGKILL mid-load leaves the target as it was, and the next run completes it;
two concurrent runs of one project end with exit 3 for one of them."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import REPO
from tests.projects import write_project

BIG_ROWS = 1_000_000
PROJECT = """
project: big
connections:
  src:
    default: sqlite:///metadata/big_source.db
ddl: [big/001_big.sql]
tables:
  - target: big_items
    source: {connection: src, query: sql/big.sql}
    strategy: merge
    keys: [id]
    cursor: updated_at
    chunk_size: 5000
"""
DDL = "CREATE TABLE big_items (id BIGINT PRIMARY KEY, name VARCHAR(40), amount NUMERIC(14,2), updated_at TIMESTAMP);"
QUERY = "SELECT id, name, amount, updated_at FROM items WHERE id <= {limit}"


def make_source(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, amount NUMERIC, updated_at TEXT)")
        conn.execute(
            f"""WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {BIG_ROWS})
            INSERT INTO items SELECT i, 'name ' || i, i * 0.01,
                   strftime('%Y-%m-%d %H:%M:%S', '2024-01-01', '+' || i || ' seconds') FROM g"""
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def big_home(request: pytest.FixtureRequest, etl_home: Path) -> tuple[Path, dict[str, str], str]:
    write_project(
        etl_home, "big", PROJECT, files={"sql/big.sql": QUERY.format(limit=1000)}, ddl={"big/001_big.sql": DDL}
    )
    make_source(etl_home / "metadata" / "big_source.db")
    env = {**os.environ, "ETL_HOME": str(etl_home), "ETL_PROGRESS_SECONDS": "0.2"}
    if request.param == "sqlite":
        url = f"sqlite:///{etl_home / 'metadata' / 'warehouse.db'}"
    else:
        pg = request.getfixturevalue("pg_url")
        env["ETL_CONN_WAREHOUSE"] = pg
        url = pg.replace("postgresql://", "postgresql+psycopg://")
    return etl_home, env, url


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "script_runner.py"), "--project", "big", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def logs_of(home: Path) -> set[Path]:
    return set((home / "metadata" / "logs" / "big").glob("big_*.log"))


def wait_for_log(
    home: Path, needle: str, process: subprocess.Popen[str], timeout: float = 60, earlier: frozenset[Path] = frozenset()
) -> None:
    """Until ``needle`` is in a log of ``process`` (``earlier``: the logs of previous runs, which may hold
    the same words: a slow first run also logs "rows so far")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in logs_of(home) - earlier:
            if needle in log.read_text(encoding="utf-8"):
                return
        assert process.poll() is None, f"the run ended before {needle!r}: {process.communicate()}"
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never appeared in the log")


def test_sigkill_mid_load_leaves_the_target_unchanged_and_the_next_run_completes(big_home) -> None:
    home, env, url = big_home
    first = start(env, "--load-type", "F")
    assert first.wait(60) == 0, first.communicate()
    assert scalar(url, "SELECT count(*) FROM big_items") == 1000

    (home / "customer_code" / "big" / "sql" / "big.sql").write_text(QUERY.format(limit=BIG_ROWS), encoding="utf-8")
    earlier = frozenset(logs_of(home))
    victim = start(env, "--load-type", "F")  # a full reload: TRUNCATE/DELETE first, then COPY
    wait_for_log(home, "rows so far", victim, earlier=earlier)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    assert victim.returncode == -signal.SIGKILL

    # The killed transaction is rolled back: the 1000 rows are still there, nothing half-written.
    assert scalar(url, "SELECT count(*) FROM big_items") == 1000
    assert scalar(url, "SELECT max(id) FROM big_items") == 1000

    last = start(env, "--load-type", "F")
    out, err = last.communicate(timeout=300)
    assert last.returncode == 0, err
    assert scalar(url, "SELECT count(*) FROM big_items") == BIG_ROWS
    assert scalar(url, "SELECT count(DISTINCT id) FROM big_items") == BIG_ROWS
    if url.startswith("postgresql"):  # the warehouse's advisory lock died with the killed run's session
        assert "took over the lock" not in err
    else:  # the file lock records its holder, which is gone
        assert "took over the lock of project big left by a run that did not finish" in err
    statuses = scalar(
        url,
        "SELECT string_agg(status, ',') FROM (SELECT status FROM etl_runs ORDER BY run_id) s"
        if url.startswith("postgresql")
        else "SELECT group_concat(status, ',') FROM (SELECT status FROM etl_runs ORDER BY run_id)",
    )
    assert statuses == "success,failed,success"
    assert "killed or crashed" in str(scalar(url, "SELECT error_message FROM etl_runs WHERE status = 'failed'"))


def test_two_concurrent_runs_one_exits_3(big_home) -> None:
    home, env, url = big_home
    (home / "customer_code" / "big" / "sql" / "big.sql").write_text(QUERY.format(limit=BIG_ROWS), encoding="utf-8")
    first = start(env, "--load-type", "F")
    wait_for_log(home, "task load:big_items: started", first)
    second = start(env, "--load-type", "F")
    _, second_err = second.communicate(timeout=60)
    _, first_err = first.communicate(timeout=300)
    assert sorted([first.returncode, second.returncode]) == [0, 3]
    assert second.returncode == 3
    assert "project big is already running by pid" in second_err
    assert scalar(url, "SELECT count(*) FROM big_items") == BIG_ROWS
    assert scalar(url, "SELECT count(*) FROM etl_runs") == 1


def test_sigterm_mid_load_rolls_back_and_closes_the_audit_rows(big_home) -> None:
    home, env, url = big_home
    first = start(env, "--load-type", "F")
    assert first.wait(60) == 0, first.communicate()
    (home / "customer_code" / "big" / "sql" / "big.sql").write_text(QUERY.format(limit=BIG_ROWS), encoding="utf-8")
    earlier = frozenset(logs_of(home))
    victim = start(env, "--load-type", "F")
    wait_for_log(home, "rows so far", victim, earlier=earlier)
    victim.send_signal(signal.SIGTERM)
    _, err = victim.communicate(timeout=60)
    assert victim.returncode == 130
    assert "interrupted; the audit row is closed as failed" in err
    assert scalar(url, "SELECT count(*) FROM big_items") == 1000
    assert scalar(url, "SELECT status FROM etl_runs ORDER BY run_id DESC LIMIT 1") == "failed"
    assert scalar(url, "SELECT error_message FROM etl_task_runs ORDER BY task_run_id DESC LIMIT 1") == (
        "interrupted (Ctrl-C or SIGTERM)"
    )
    assert scalar(url, "SELECT count(*) FROM etl_task_runs WHERE status = 'running'") == 0


def test_sigterm_at_random_points_of_a_postgresql_copy_prints_one_line_and_changes_nothing(
    etl_home: Path, pg_url: str
) -> None:
    """PostgreSQL -> PostgreSQL pass-through, stopped at five random moments (the seed is in the
    assertion message): exit 130, the one line and no traceback, the target as it was, no row running."""
    import random

    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE src_items AS SELECT i AS id, 'name ' || i AS name, now() AS updated_at "
            "FROM generate_series(1, 1500000) i"
        )
        conn.execute("CREATE TABLE big_items (id BIGINT PRIMARY KEY, name TEXT, updated_at TIMESTAMPTZ)")
        conn.execute("INSERT INTO big_items SELECT * FROM src_items WHERE id <= 10")
    write_project(
        etl_home,
        "big",
        """
        project: big
        connections: {src: {}}
        tables:
          - {target: big_items, source: {connection: src, table: src_items}, strategy: merge, keys: [id],
             cursor: updated_at}
        """,
    )
    env = {**os.environ, "ETL_HOME": str(etl_home), "ETL_CONN_SRC": pg_url, "ETL_CONN_WAREHOUSE": pg_url}
    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    seed = random.randrange(1_000_000)
    moments = random.Random(seed).sample([x / 10 for x in range(5, 40)], 5)
    for moment in moments:
        victim = start(env, "--start-date", "2000-01-01")
        time.sleep(moment)
        victim.send_signal(signal.SIGTERM)
        out, err = victim.communicate(timeout=120)
        where = f"SIGTERM after {moment} s (seed {seed})"
        if victim.returncode == 0:  # it finished first: put the table back for the next moment
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute("DELETE FROM big_items WHERE id > 10")
            continue
        # -SIGTERM: it landed before the runner had installed its handler (a busy machine): nothing had started
        assert victim.returncode in (130, -signal.SIGTERM), f"{where}: {err}"
        assert "Traceback" not in err and "Error" not in err.replace("ERROR   ", ""), f"{where}: {err}"
        said = [line for line in err.splitlines() if line.startswith("script_runner.py: interrupted")]
        if victim.returncode == 130:
            assert len(said) == 1 and err.strip().splitlines()[-1] == said[0], f"{where}: {err}"
        assert scalar(url, "SELECT count(*) FROM big_items") == 10, where
        # A kill before the first run created the audit tables leaves none: nothing is running then.
        for audit in ("etl_runs", "etl_task_runs"):
            if scalar(url, f"SELECT to_regclass('{audit}') IS NOT NULL"):
                assert scalar(url, f"SELECT count(*) FROM {audit} WHERE status = 'running'") == 0, where
