"""The run lock in a PostgreSQL warehouse (session advisory locks): it excludes across processes
(and so across hosts), per project or per table, names its holder, and dies with a crashed holder;
a SQLite warehouse keeps the file lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors import open_connector
from script_factory.warehouse_lock import FileRunLock, WarehouseLock, lock_key, run_lock
from tests.conftest import REPO, query, run_cli
from tests.integration.test_orchestrated_runs import make
from utilities.errors import LockedError
from utilities.secrets import Secret

HOLDER = """
import pathlib, sys, time
sys.path.insert(0, {repo!r})
from connectors import open_connector
from script_factory.warehouse_lock import WarehouseLock
from utilities.secrets import Secret
tables = [t for t in sys.argv[2].split(",") if t]
lock = WarehouseLock(open_connector("warehouse", Secret(sys.argv[1]), pathlib.Path(".")), "phases", tables)
lock.acquire()
print("held", flush=True)
time.sleep(300)
"""


def pg_lock(url: str, *tables: str) -> WarehouseLock:
    return WarehouseLock(open_connector("warehouse", Secret(url), Path(".")), "phases", tables)


@pytest.fixture
def holder(pg_url: str):
    """Start a process that takes the warehouse lock of project phases (``tables``: only those), and
    waits; it is SIGKILLed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*tables: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER.format(repo=str(REPO)), pg_url, ",".join(tables)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_project_lock_excludes_another_process_and_names_it(pg_url: str, holder) -> None:
    process = holder()
    with pytest.raises(LockedError, match=rf"project phases is already running by pid {process.pid} on "):
        pg_lock(pg_url).acquire()
    with pytest.raises(LockedError, match="project phases is already running"):
        pg_lock(pg_url, "items").acquire()  # a whole-project run excludes the table runs too


def test_table_locks_exclude_the_same_table_only(pg_url: str, holder) -> None:
    holder("items")
    with pg_lock(pg_url, "items_copy"):  # another table of the same project: at once
        pass
    with pytest.raises(LockedError, match="table items of project phases is already running by pid"):
        pg_lock(pg_url, "items_copy", "items").acquire()
    with pytest.raises(LockedError, match="project phases is already running"):
        pg_lock(pg_url).acquire()  # the whole project waits for its table runs
    with pg_lock(pg_url, "items_copy"):  # a refused lock took nothing with it
        pass


def test_the_lock_dies_with_a_killed_holder(pg_url: str, holder) -> None:
    process = holder("items")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10  # the server notices the closed socket at once; allow for a busy machine
    while True:
        try:
            with pg_lock(pg_url, "items"):
                break
        except LockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_released_locks_leave_no_advisory_lock(pg_url: str) -> None:
    with pg_lock(pg_url, "items"):
        held = query(
            pg_url.replace("postgresql://", "postgresql+psycopg://"),
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
        )
        assert held == [(2,)]  # the project's (shared) and the table's
    after = query(
        pg_url.replace("postgresql://", "postgresql+psycopg://"),
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
    )
    assert after == [(0,)]


def test_a_sqlite_warehouse_keeps_the_file_lock(tmp_path: Path) -> None:
    connector = open_connector("warehouse", Secret(f"sqlite:///{tmp_path / 'w.db'}"), tmp_path)
    lock = run_lock(connector, tmp_path / "locks", "phases", ("items",))
    assert isinstance(lock, FileRunLock) and lock.scope is None  # per project, whatever the tables
    with lock, pytest.raises(LockedError, match="project phases is already running"):
        run_lock(connector, tmp_path / "locks", "phases", ("items_copy",)).__enter__()
    assert (tmp_path / "locks" / "phases.lock").exists()


def test_keys_are_stable_and_distinct() -> None:
    assert lock_key("phases") == lock_key("phases")
    assert len({lock_key("phases"), lock_key("phases", "items"), lock_key("phases", "items_copy")}) == 3


def test_runs_of_one_table_exit_3_while_another_table_runs(etl_home: Path, pg_url: str, holder, monkeypatch) -> None:
    make(etl_home)
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    assert run_cli("--project", "phases", "--steps", "prepare").code == 0
    process = holder("items")

    same = run_cli("--project", "phases", "--steps", "load", "--tables", "items")
    other = run_cli("--project", "phases", "--steps", "load", "--tables", "items_copy")

    assert same.code == 3, same.stderr
    assert f"table items of project phases is already running by pid {process.pid}" in same.stderr
    assert other.code == 0, other.stderr


def test_a_table_run_closes_only_the_dead_runs_of_its_own_tables(etl_home: Path, pg_url: str, monkeypatch) -> None:
    make(etl_home)
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    assert run_cli("--project", "phases", "--steps", "prepare").code == 0
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:  # two runs still "running": one of each table (say, live on another host)
        for table in ("items", "items_copy"):
            conn.execute(
                text(
                    "INSERT INTO etl_runs (project, status, load_type, start_execution_time, target_table) "
                    "VALUES ('phases', 'running', 'I', now(), :t)"
                ),
                {"t": table},
            )
    engine.dispose()

    assert run_cli("--project", "phases", "--steps", "load", "--tables", "items").code == 0

    rows = query(url, "SELECT target_table, status FROM etl_runs WHERE target_table IS NOT NULL ORDER BY run_id")
    assert rows == [("items", "failed"), ("items_copy", "running"), ("items", "success")]
