"""``--backfill``: a range loaded in windows of N days, each a normal run, with a ledger that resumes.

A backfill killed (SIGKILL) or stopped (SIGTERM) in its 4th window resumes at the 4th; a failed window
is re-run by ``--redo-failed`` and by nothing else; windows already done are never reloaded; the rows end
equal to a single full load, without a duplicate; the watermark never moves backwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import REPO, query, run_cli
from tests.projects import sqlite_items, write_project

# append without keys: a window loaded twice would show as duplicates (a dated append is a delete_insert)
PROJECT = """
project: bf
connections:
  src:
    default: sqlite:///metadata/src.db
ddl: [bf/001_items.sql]
before_load:
  - function: fail_on_purpose
after_load:
  - function: pause_on_purpose
tables:
  - {target: items, source: {connection: src, table: items}, strategy: append, cursor: updated_at}
"""
DDL = "CREATE TABLE items (id BIGINT, name VARCHAR(100), amount NUMERIC(12,2), updated_at TIMESTAMP NOT NULL);"
# A window fails when metadata/control/fail_<day> exists, and pauses (after its load committed) when
# metadata/control/pause_<day> does, saying so with metadata/control/in_<day>.
WORKER = """
import time


def _day(ctx):
    return ctx.run_window.start.date().isoformat() if ctx.run_window.filtered else "full"


def fail_on_purpose(ctx):
    if (ctx.paths.metadata / "control" / f"fail_{_day(ctx)}").exists():
        raise RuntimeError(f"window {_day(ctx)} fails on purpose")


def pause_on_purpose(ctx):
    control = ctx.paths.metadata / "control"
    if (control / f"pause_{_day(ctx)}").exists():
        (control / f"in_{_day(ctx)}").touch()
        time.sleep(120)
"""
ROWS = [  # every two hours from 2024-01-01 02:00 to 2024-01-10 22:00 (2024-01-02 00:00 is window 1's last)
    (i, f"item {i}", f"{i}.25", (datetime(2024, 1, 1) + timedelta(hours=2 * i)).strftime("%Y-%m-%d %H:%M:%S"))
    for i in range(1, 120)
]
BACKFILL = ("--project", "bf", "--backfill", "--start-date", "2024-01-01", "--end-date", "2024-01-11")
BACKFILL += ("--load-days", "1")


@pytest.fixture
def home(etl_home: Path) -> Path:
    write_project(etl_home, "bf", PROJECT, files={"script_worker.py": WORKER}, ddl={"bf/001_items.sql": DDL})
    sqlite_items(etl_home / "metadata" / "src.db", ROWS)
    (etl_home / "metadata" / "control").mkdir()
    return etl_home


def ledger(url: str) -> list[tuple]:
    return query(
        url,
        "SELECT chunk_number, window_start, window_end, status, rows, attempts, run_id FROM etl_backfill_chunks "
        "ORDER BY chunk_number",
    )


def items(url: str) -> list[tuple]:
    return query(url, "SELECT id, name, amount, updated_at FROM items ORDER BY id")


def assert_equal_to_a_full_load(url: str) -> None:
    """119 rows, no duplicate, and exactly what a full reload then holds."""
    assert query(url, "SELECT count(*), count(DISTINCT id) FROM items") == [(119, 119)]
    backfilled = items(url)
    full = run_cli("--project", "bf", "--load-type", "F")
    assert full.code == 0, full.stderr
    assert items(url) == backfilled


def watermarks(url: str) -> list[str]:
    return [r[0] for r in query(url, "SELECT watermark FROM etl_task_runs WHERE task_kind = 'load' ORDER BY run_id")]


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_backfill_stopped_in_window_4_resumes_at_4(
    home: Path, pg_url: str, stop: signal.Signals, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)  # for the runs in this process
    env = {**os.environ, "ETL_HOME": str(home), "ETL_CONN_WAREHOUSE": pg_url}
    control = home / "metadata" / "control"
    (control / "pause_2024-01-04").touch()
    victim = subprocess.Popen(
        [sys.executable, str(REPO / "script_runner.py"), *BACKFILL],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (control / "in_2024-01-04").exists():
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "window 4 never started"
        time.sleep(0.05)
    victim.send_signal(stop)
    out, err = victim.communicate(timeout=60)

    before = ledger(url)
    assert [r[:6] for r in before[:3]] == [
        (n, f"2024-01-0{n} 00:00:00", f"2024-01-0{n + 1} 00:00:00", "success", 12, 1) for n in (1, 2, 3)
    ]
    if stop == signal.SIGKILL:
        assert victim.returncode == -signal.SIGKILL
        assert before[3][3:6] == ("running", None, 1)  # closed as interrupted by the next backfill
    else:
        assert victim.returncode == 130, err
        assert before[3][3:6] == ("interrupted", 12, 1)
        assert "chunk 4/10, 2024-01-04..2024-01-05, 12 rows, INTERRUPTED" in out
        assert out.strip().splitlines()[-1] == (
            "backfill bf: 3 done, 0 failed, 7 left; run the same command again to resume"
        )
    assert [r[3] for r in before[4:]] == ["pending"] * 6

    (control / "pause_2024-01-04").unlink()
    resumed = run_cli(*BACKFILL)
    assert resumed.code == 0, resumed.stderr
    lines = resumed.stdout.splitlines()
    assert lines[0].endswith("7 to run, resuming at chunk 4 (2024-01-04..2024-01-05)")
    progress = [line for line in lines if line.startswith("chunk ")]
    assert [line.split(",")[0] for line in progress] == [f"chunk {n}/10" for n in range(4, 11)]
    assert progress[0].startswith("chunk 4/10, 2024-01-04..2024-01-05, 12 rows, ETA ")
    assert lines[-1] == "backfill bf: 10 done, 0 failed, 0 left"

    after = ledger(url)
    assert after[:3] == before[:3]  # windows done are never reloaded: same runs, one attempt
    assert [r[3] for r in after] == ["success"] * 10
    assert [r[5] for r in after] == [1, 1, 1, 2, 1, 1, 1, 1, 1, 1]
    assert sum(r[4] for r in after) == 119
    # the killed or stopped run's audit row is closed as failed
    assert query(url, "SELECT count(*) FROM etl_runs WHERE status = 'failed'") == [(1,)]
    assert watermarks(url) == sorted(watermarks(url))  # never backwards
    assert_equal_to_a_full_load(url)


def test_redo_failed_reruns_only_the_failed_windows(home: Path, warehouse: str) -> None:
    control = home / "metadata" / "control"
    for day in ("2024-01-03", "2024-01-06"):
        (control / f"fail_{day}").touch()
    first = run_cli(*BACKFILL)
    assert first.code == 1, first.stderr
    assert "chunk 3/10, 2024-01-03..2024-01-04, 0 rows, FAILED (run 3): " in first.stdout
    assert "window 2024-01-03 fails on purpose" in first.stdout
    assert first.stdout.strip().splitlines()[-1] == (
        "backfill bf: 8 done, 2 failed (chunk 3 2024-01-03..2024-01-04, chunk 6 2024-01-06..2024-01-07), "
        "0 left; add --redo-failed to re-run only the failed windows"
    )
    before = ledger(warehouse)
    assert [r[3] for r in before] == ["success"] * 2 + ["failed"] + ["success"] * 2 + ["failed"] + ["success"] * 4
    failed_error = query(warehouse, "SELECT error_message FROM etl_backfill_chunks WHERE chunk_number = 3")
    assert "fails on purpose" in failed_error[0][0]
    top = watermarks(warehouse)[-1]

    for day in ("2024-01-03", "2024-01-06"):
        (control / f"fail_{day}").unlink()
    redo = run_cli(*BACKFILL, "--redo-failed")
    assert redo.code == 0, redo.stderr
    assert "re-running the 2 failed window(s) (--redo-failed)" in redo.stdout
    assert [line.split(",")[0] for line in redo.stdout.splitlines() if line.startswith("chunk ")] == [
        "chunk 3/10",
        "chunk 6/10",
    ]
    after = ledger(warehouse)
    assert [r[3] for r in after] == ["success"] * 10
    assert [r[5] for r in after] == [1, 1, 2, 1, 1, 2, 1, 1, 1, 1]
    assert [r[6] for i, r in enumerate(after) if i not in (2, 5)] == [
        r[6] for i, r in enumerate(before) if i not in (2, 5)
    ]
    assert query(warehouse, "SELECT count(*) FROM etl_runs") == [(12,)]
    # re-running old windows never moves the watermark back
    assert query(warehouse, "SELECT watermark FROM etl_table_state") == [(top,)] == [("2024-01-10 22:00:00",)]

    again = run_cli(*BACKFILL)  # everything done: nothing runs
    assert again.code == 0
    assert "nothing to run (10 done already)" in again.stdout
    assert query(warehouse, "SELECT count(*) FROM etl_runs") == [(12,)]
    assert_equal_to_a_full_load(warehouse)


def test_restart_runs_every_window_again(home: Path) -> None:
    url = f"sqlite:///{home / 'metadata' / 'warehouse.db'}"
    assert run_cli(*BACKFILL).code == 0
    restart = run_cli(*BACKFILL, "--restart")
    assert restart.code == 0
    assert "starting over (--restart)" in restart.stdout
    assert [r[5] for r in ledger(url)] == [1] * 10
    assert query(url, "SELECT count(*) FROM etl_runs") == [(20,)]
    assert query(url, "SELECT count(*), count(DISTINCT id) FROM items") == [(119, 119)]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--project", "bf", "--backfill", "--start-date", "2024-01-01", "--end-date", "2024-01-11"), "--load-days"),
        ((*BACKFILL[:-1], "0"), "not a number of days"),
        (("--project", "bf", "--redo-failed"), "--redo-failed belongs to --backfill"),
        ((*BACKFILL, "--redo-failed", "--restart"), "exclude each other"),
        ((*BACKFILL, "--dry-run"), "cannot be combined with --dry-run"),
        (("--project", "bf", "--backfill", "--start-date", "2024-02-01", "--end-date", "2024-01-01",
          "--load-days", "1"), "must be before"),
    ],
)  # fmt: skip
def test_bad_backfill_arguments_are_exit_2(home: Path, args: tuple[str, ...], said: str) -> None:
    result = run_cli(*args)
    assert result.code == 2
    assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (home / "metadata" / "warehouse.db").exists()
