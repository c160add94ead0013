"""The kill matrix: SIGKILL at random points of runs of every strategy and load type, on SQLite and PostgreSQL.

A project loads four tables, one per strategy (t_merge and t_delins are created by their first load,
from the source): append and delete_insert (which replaces a window: a row whose cursor moved to a
later window would stay in its old one too) from an insert-only source, merge and replace from a
source whose rows also change. Each trial changes the source, copies the
warehouse, starts a run (F, I, or I with dates; ``publish: table``, with ``parallel: 1`` or ``4``, or
``publish: run``) and kills it at a
random moment (20 kills in all in the slow test, 10 on each warehouse). Then:

* every table, with its watermark, is either as it was before the run or exactly as a complete run of
  the same command leaves it (found by running that command to completion on the copy); with
  ``publish: run``, either all tables are as before or all are complete;
* the next run completes and leaves exactly what the complete run left: nothing duplicated, nothing lost.

At the end every table equals its source. The default run makes a few trials; the ``slow`` test (run by
.ci/run) makes 10 kills on each warehouse, 20 in all. The seed is in every assertion message.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL, REPO, query
from tests.projects import write_project

TABLES = {"t_append": "append", "t_merge": "merge", "t_replace": "replace", "t_delins": "delete_insert"}
ROWS = 4000
BASE = datetime(2024, 1, 1)
PROJECT = """
project: km
connections:
  src:
    default: sqlite:///metadata/km_source.db
publish: {publish}
parallel: {parallel}
ddl: [km/001_tables.sql]
tables:
  - {{target: t_append, source: {{connection: src, table: events}}, strategy: append, keys: [id], cursor: updated_at}}
  - {{target: t_merge, source: {{connection: src, table: items}}, strategy: merge, keys: [id], cursor: updated_at}}
  - {{target: t_replace, source: {{connection: src, table: items}}, strategy: replace, keys: [id]}}
  - {{target: t_delins, source: {{connection: src, table: events}}, strategy: delete_insert, keys: [id],
     cursor: updated_at}}
"""
# t_merge and t_delins have no DDL: their first load creates them from the source, in its transaction.
DDL = "\n".join(
    f"CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(60), amount NUMERIC(12,2), updated_at TIMESTAMP);"
    for t in ("t_append", "t_replace")
)


class Warehouse:
    """The warehouse under test: its URL for the runs, a snapshot and a restore, and its tables' state."""

    def __init__(self, kind: str, home: Path, pg_url: str | None) -> None:
        self.kind, self.home, self.pg_url = kind, home, pg_url
        self.path = home / "metadata" / "warehouse.db"

    @property
    def env_url(self) -> str | None:
        return self.pg_url

    @property
    def sa_url(self) -> str:
        if self.pg_url:
            return self.pg_url.replace("postgresql://", "postgresql+psycopg://")
        return f"sqlite:///{self.path}"

    def snapshot(self, name: str) -> Callable[[], None]:
        """Copy the warehouse now; the returned function puts the copy back."""
        if self.pg_url is None:  # the database file and its rollback journal, if a killed writer left one
            files = [self.path, self.path.with_name(self.path.name + "-journal")]
            copies = {f: f.with_name(f"{name}_{f.name}") for f in files}
            for original, copy in copies.items():
                copy.unlink(missing_ok=True)
                if original.exists():
                    shutil.copyfile(original, copy)

            def put_back() -> None:
                for original, copy in copies.items():
                    original.unlink(missing_ok=True)
                    if copy.exists():
                        shutil.copyfile(copy, original)

            return put_back
        database = self.pg_url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}_{name}"')
            admin.execute(f'CREATE DATABASE "{database}_{name}" TEMPLATE "{database}"')

        def restore() -> None:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{database}" TEMPLATE "{database}_{name}"')

        return restore

    def state(self) -> dict[str, tuple[Any, ...]]:
        """Per table: row count, distinct keys, a checksum of every row, and its watermark."""
        found: dict[str, tuple[Any, ...]] = {}
        for table in TABLES:
            try:
                rows = query(self.sa_url, f"SELECT id, name, amount, updated_at FROM {table}")
            except Exception:  # not created yet: the DDL task had not committed (the same as empty)
                rows = []
            try:
                mark = query(
                    self.sa_url,
                    "SELECT watermark FROM etl_table_state WHERE project = 'km' AND target_table = :t",
                    t=table,
                )
            except Exception:
                mark = []
            normal = sorted((int(i), n, f"{float(a):.2f}", str(u)[:19]) for i, n, a, u in rows)
            digest = hashlib.sha256(repr(normal).encode()).hexdigest()[:16]
            found[table] = (len(rows), len({r[0] for r in rows}), digest, mark[0][0] if mark else None)
        return found


def change_source(path: Path, rng: random.Random, step: int) -> None:
    """New events; new items and changed ones (newer updated_at); the first call creates both tables."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT, amount NUMERIC(12,2), "
            "updated_at TIMESTAMP)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, name TEXT, amount NUMERIC(12,2), "
            "updated_at TIMESTAMP)"
        )
        (top,) = conn.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()
        count = ROWS if top == 0 else 300
        stamp = BASE + timedelta(days=step)
        new = [(top + i, f"item {top + i}", f"{(top + i) % 997}.25", _at(stamp, i)) for i in range(1, count + 1)]
        conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", new)
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", new)
        if top:
            changed = rng.sample(range(1, top + 1), 200)
            conn.executemany(
                "UPDATE items SET name = ?, updated_at = ? WHERE id = ?",
                [(f"changed {step}", _at(stamp, 5000 + n), i) for n, i in enumerate(changed)],
            )


def _at(day: datetime, n: int) -> str:
    return (day + timedelta(seconds=n)).strftime("%Y-%m-%d %H:%M:%S")


def command(load_type: str, step: int) -> list[str]:
    args = [sys.executable, str(REPO / "script_runner.py"), "--project", "km"]
    if load_type == "F":
        return [*args, "--load-type", "F"]
    if load_type == "I with dates":  # the last two days again: an overlapping window
        start = (BASE + timedelta(days=max(step - 2, 0))).isoformat()
        return [*args, "--start-date", start, "--end-date", (BASE + timedelta(days=step + 1)).isoformat()]
    return args


def _wait_for_the_tasks(home: Path, victim: subprocess.Popen[str]) -> None:
    """Until the run's log says its first task started (or the run ended)."""
    logs = home / "metadata" / "logs" / "km"
    seen = set(logs.glob("*.log")) if logs.is_dir() else set()
    deadline = time.monotonic() + 60
    while victim.poll() is None and time.monotonic() < deadline:
        new = [p for p in logs.glob("*.log") if p not in seen] if logs.is_dir() else []
        if any("task " in p.read_text(encoding="utf-8", errors="replace") for p in new):
            return
        time.sleep(0.01)


def _task_seconds(stderr: str) -> float:
    """How long a complete run spent on its tasks (from its first log line to its last)."""
    stamps = [datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S") for line in stderr.splitlines() if line[:2] == "20"]
    return max((stamps[-1] - stamps[0]).total_seconds(), 0.3) if stamps else 1.0


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def kill_trials(home: Path, warehouse: Warehouse, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    env = {**os.environ, "ETL_HOME": str(home)}
    if warehouse.env_url:
        env["ETL_CONN_WAREHOUSE"] = warehouse.env_url
    source = home / "metadata" / "km_source.db"
    change_source(source, rng, 0)
    done, step, durations = 0, 0, [1.0]
    while done < kills:
        step += 1
        publish = rng.choice(["table", "table", "run"])
        parallel = 1 if publish == "run" else rng.choice([1, 4])  # publish: run refuses parallel
        yml = PROJECT.format(publish=publish, parallel=parallel)
        (home / "customer_code" / "km" / "project.yml").write_text(yml, encoding="utf-8")
        change_source(source, rng, step)
        load_type = rng.choice(["F", "I", "I with dates"])
        argv = command(load_type, step)
        restore = warehouse.snapshot("before")
        before = warehouse.state()
        moment = rng.uniform(0.0, max(durations))
        victim = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_for_the_tasks(home, victim)  # start-up (imports) is not worth killing: the tasks are
        time.sleep(moment)
        killed = victim.poll() is None
        if killed:
            victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=300)
        where = f"seed {seed}, trial {step}: {load_type}, publish {publish}, parallel {parallel}"
        where += f", SIGKILL after {moment:.2f} s"
        after_kill = warehouse.state()
        # what a complete run of the same command leaves, from the same start
        keep = warehouse.snapshot("killed")
        restore()
        complete_run = run(argv, env)
        durations.append(_task_seconds(complete_run.stderr))
        assert complete_run.returncode == 0, f"{where}: the complete run failed: {complete_run.stderr[-2000:]}"
        complete = warehouse.state()
        keep()
        if killed:
            done += 1
            changed = [t for t in TABLES if after_kill[t] != before[t]]
            for table in changed:
                assert after_kill[table] == complete[table], f"{where}: {table} is half-loaded: {after_kill[table]}"
            if publish == "run" and changed:
                assert changed == list(TABLES), f"{where}: publish: run published only {changed}"
        rerun = run(argv, env)
        assert rerun.returncode == 0, f"{where}: the next run failed: {rerun.stderr[-2000:]}"
        assert warehouse.state() == complete, f"{where}: the next run did not end where a complete run ends"
    final = warehouse.state()
    assert all(final[t][0] == final[t][1] for t in TABLES), f"seed {seed}: duplicate keys: {final}"
    with sqlite3.connect(source) as conn:
        (items,) = conn.execute("SELECT count(*) FROM items").fetchone()
    assert {t: final[t][0] for t in TABLES} == dict.fromkeys(TABLES, items), f"seed {seed}: {final}"


@pytest.fixture(params=["sqlite", "postgresql"])
def km_warehouse(request: pytest.FixtureRequest, etl_home: Path) -> Iterator[Warehouse]:
    write_project(etl_home, "km", PROJECT.format(publish="table", parallel=1), ddl={"km/001_tables.sql": DDL})
    pg_url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    yield Warehouse(request.param, etl_home, pg_url)
    if pg_url is not None:  # the snapshots beside the test's database
        database = pg_url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            for name in ("before", "killed"):
                admin.execute(f'DROP DATABASE IF EXISTS "{database}_{name}" WITH (FORCE)')


def test_a_few_kills_at_random_points_leave_every_table_whole(km_warehouse: Warehouse) -> None:
    kill_trials(km_warehouse.home, km_warehouse, kills=3, seed=random.randrange(1 << 30))


@pytest.mark.slow
def test_twenty_kills_at_random_points_leave_every_table_whole(km_warehouse: Warehouse) -> None:
    kill_trials(km_warehouse.home, km_warehouse, kills=10, seed=random.randrange(1 << 30))  # x2 warehouses
