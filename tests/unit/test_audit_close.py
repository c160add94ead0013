"""Closing a run closes its task rows a signal left open (the SIGTERM that lands between a task row's
insert and the code that would close it)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, select

from script_factory import audit
from utilities.dates import utc_now


def test_closing_a_run_fails_its_task_rows_still_running(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    audit.metadata.create_all(engine)
    with engine.begin() as conn:
        run_id = audit.open_run(conn, "p", {"project": "p", "load_type": "I", "start_execution_time": utc_now()})
        other = audit.open_run(conn, "q", {"project": "q", "load_type": "I", "start_execution_time": utc_now()})
        task = {"project": "p", "task_kind": "load", "attempts": 1, "start_time": utc_now()}
        left_open = audit.start_task(conn, {**task, "run_id": run_id, "task_name": "load:a"})
        done = audit.start_task(conn, {**task, "run_id": run_id, "task_name": "load:b"})
        audit.finish_task(conn, done, {"status": audit.SUCCESS})
        elsewhere = audit.start_task(conn, {**task, "run_id": other, "project": "q", "task_name": "load:a"})
        audit.close_run(conn, run_id, {"status": audit.FAILED, "error_message": "interrupted (Ctrl-C or SIGTERM)"})
        rows = dict(conn.execute(select(audit.etl_task_runs.c.task_run_id, audit.etl_task_runs.c.status)).all())
        message = conn.execute(
            select(audit.etl_task_runs.c.error_message).where(audit.etl_task_runs.c.task_run_id == left_open)
        ).scalar_one()
    assert rows == {left_open: audit.FAILED, done: audit.SUCCESS, elsewhere: audit.RUNNING}
    assert message == "interrupted (Ctrl-C or SIGTERM)"
    engine.dispose()
