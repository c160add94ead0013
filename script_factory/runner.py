"""The runner: lock, audit row, tasks in order with one shared context, then outputs and clean-up.

This is the only place that catches a failing task. Everything a run produces (audit rows, the log
file, outputs, the e-mail) is decided here, in this order:

1. take the project lock (LockedError -> exit 3); open the log file;
2. create the audit tables on first use; close rows left ``running`` by a dead run;
3. resolve each table's window from its watermark; insert the ``etl_runs`` row as ``running``;
4. run the tasks in order, one ``etl_task_runs`` row each; retry TransientError with back-off;
   stop at the first failure (or at Ctrl-C / SIGTERM);
5. decide the run's outcome once (script_factory/outcome.py) and close ``etl_runs`` with it;
6. send the e-mail if asked; delete outputs flagged ``delete_after_run``; prune logs and outputs;
   release the lock.

Audit writes are retried like tasks (the project's ``retries``), so a warehouse that drops out and
comes back within them still gets every row closed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from script_factory import __version__, audit
from script_factory.config import RetrySpec
from script_factory.context import Connections, RunContext
from script_factory.factory import Plan
from script_factory.lock import ProjectLock
from script_factory.outcome import (
    FAILED,
    INTERRUPTED,
    SUCCESS,
    RunOutcome,
    RunSummary,
    TaskOutcome,
    decide,
    describe,
)
from script_factory.request import RunRequest
from script_factory.settings import REPO_ROOT, Settings
from script_factory.task import StepResult, Task
from script_factory.window import Window, next_watermark, resolve_windows
from utilities import interrupts, logs, retention
from utilities.dates import encode_cursor, extreme, utc_now
from utilities.errors import EtlError, TransientError
from utilities.version import script_version

logger = logging.getLogger("script_factory.runner")

DEFAULT_KEEP_DAYS = 30
DEFAULT_KEEP_RUNS = 100
T = TypeVar("T")


def run(plan: Plan, request: RunRequest, settings: Settings) -> RunSummary:
    """Run ``plan`` under the project lock; returns the summary (its ``exit_code`` for the scheduler).

    Raises LockedError (exit 3) if another live run holds the lock; any other failure is recorded in
    the audit row and reported through the summary (an interruption too: exit code 130).
    """
    project = plan.project
    started = utc_now()
    with ProjectLock(settings.paths.locks, project.name):
        log_file = logs.install_run_log(  # None if the log file cannot be made: console only
            settings.paths.logs, project.name, started.astimezone(), settings.masker, _log_level(settings)
        )
        try:
            summary = _execute(plan, request, settings, started, log_file)
            _finish(plan, settings, summary)
        finally:
            logs.remove()
    return summary


def _execute(
    plan: Plan, request: RunRequest, settings: Settings, started: datetime, log_file: Path | None
) -> RunSummary:
    """Audit row, windows, tasks; returns the summary with the outcome decided once."""
    project = plan.project
    clock = time.perf_counter()
    logger.info(
        "run of project %s: load type %s, environment %s, %d task(s), log %s",
        project.name,
        request.load_type.value,
        settings.environment,
        len(plan.tasks),
        log_file or "(none: console only)",
    )
    connections = Connections(plan.connection_urls, settings.paths.home, settings.variables, project.name)
    outcomes: list[TaskOutcome] = []
    failure: BaseException | None = None
    interrupted = False
    run_id: int | None = None
    writer = _AuditWriter(connections, project.warehouse, project.retries)
    try:
        writer.write("prepare the audit tables", lambda engine: audit.prepare(engine, project.name))
        windows, run_window = resolve_windows(
            project, request, started, lambda table: writer.read(lambda e: audit.previous_max(e, project.name, table))
        )
        warehouse_name = connections.sql_connector(project.warehouse).database_name
        opening = _opening_values(plan, request, settings, windows, run_window, started, warehouse_name, log_file)
        run_id = writer.write("open the audit row", lambda engine: audit.open_run(engine, opening))
        ctx = RunContext(
            request=request,
            project=project,
            paths=settings.paths,
            environment=settings.environment,
            connections=connections,
            windows=windows,
            run_window=run_window,
            now=started,
            run_id=run_id,
            progress_interval=settings.option("ETL_PROGRESS_SECONDS", None, 10.0, float),
            logger=logging.getLogger(f"project.{project.name}"),
        )
        for task in plan.tasks:
            outcome = _run_task(task, ctx, writer)
            outcomes.append(outcome)
            if outcome.status != SUCCESS:
                break
    except KeyboardInterrupt:
        interrupted = True
        logger.error("run interrupted (Ctrl-C or SIGTERM): open loads are rolled back")
    except Exception as exc:
        if interrupts.requested():
            interrupted = True
            logger.error("run interrupted (Ctrl-C or SIGTERM): open loads are rolled back")
        else:
            failure = exc
            logger.error("run failed before or between tasks: %s", describe(exc))
            logger.debug("traceback", exc_info=exc)
    result = decide(outcomes, failure, interrupted)
    closed = run_id is None or _close_audit(writer, run_id, result, time.perf_counter() - clock)
    connections.close()
    summary = RunSummary(
        project=project.name,
        load_type=request.load_type.value,
        started=started,
        seconds=time.perf_counter() - clock,
        outcome=result,
        outcomes=tuple(outcomes),
        run_id=run_id,
        log_file=log_file,
        audit_closed=closed,
    )
    logger.info(
        "run %s of project %s: %s, %s rows in %.1f s",
        run_id or "-",
        project.name,
        summary.status.upper(),
        f"{result.rows:,}",
        summary.seconds,
    )
    return summary


# -- tasks -----------------------------------------------------------------------------------------


def _run_task(task: Task, ctx: RunContext, writer: _AuditWriter) -> TaskOutcome:
    """Run one task with retries on TransientError; record its ``etl_task_runs`` row."""
    window = ctx.windows.get(task.target_table) if task.target_table else None
    opening = {
        "run_id": ctx.run_id,
        "project": ctx.project.name,
        "task_name": task.name,
        "task_kind": task.kind,
        "target_table": task.target_table,
        "start_time": utc_now(),
        "window_start": encode_cursor(window.start) if window and window.filtered else None,
        "window_end": encode_cursor(window.end) if window and window.filtered else None,
        "previous_max_date": encode_cursor(window.previous_max) if window else None,
    }
    try:
        task_run_id = writer.write(f"record the start of task {task.name}", lambda e: audit.start_task(e, opening))
    except EtlError as exc:  # the warehouse is away: the task does not start, and fails
        logger.error("task %s: not started: %s", task.name, exc)
        return TaskOutcome(task, FAILED, 0.0, 0, None, exc)
    logger.info("task %s: started", task.name)
    clock = time.perf_counter()
    try:
        attempt = retrying(lambda: task.run(ctx), ctx.project.retries, f"task {task.name}")
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: close the task's row, then unwind the run
        writer.write_later(
            f"close task {task.name}",
            lambda e: audit.finish_task(
                e, task_run_id, {"status": FAILED, "end_time": utc_now(), "error_message": INTERRUPTED}
            ),
        )
        raise
    seconds = time.perf_counter() - clock
    result, error = attempt.value, attempt.error
    outcome = TaskOutcome(task, SUCCESS if error is None else FAILED, seconds, attempt.number, result, error)
    if error is not None:
        logger.error("task %s: FAILED after %.1f s: %s", task.name, seconds, describe(error))
        if not isinstance(error, EtlError):
            logger.debug("traceback of task %s", task.name, exc_info=error)
    else:
        message = f" ({result.message})" if result and result.message else ""
        logger.info("task %s: done in %.1f s%s", task.name, seconds, message)
    values = _closing_values(outcome, window)
    writer.write_later(f"close task {task.name}", lambda e: audit.finish_task(e, task_run_id, values))
    return outcome


def _closing_values(outcome: TaskOutcome, window: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": outcome.status,
        "attempts": outcome.attempts,
        "end_time": utc_now(),
        "duration_seconds": outcome.seconds,
        "error_message": outcome.error,
    }
    result: StepResult | None = outcome.result
    if result is not None:
        values.update(
            rows=result.rows,
            rows_per_second=result.rows / outcome.seconds if outcome.seconds > 0 and result.rows else None,
            data_min_date=encode_cursor(result.data_min),
            data_max_date=encode_cursor(result.data_max),
            watermark=encode_cursor(next_watermark(window, result.data_max)) if window else None,
            message=result.message,
            strategy=result.strategy,
        )
    return values


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """How a retried call ended: its value, or its last error, after ``number`` attempts."""

    number: int
    value: T | None = None
    error: Exception | None = None


def retrying(call: Callable[[], T], retries: RetrySpec, label: str) -> Attempt[T]:
    """``call()`` up to ``retries.attempts`` times while it raises TransientError, pausing
    ``backoff_seconds``, then twice that, and so on. Any other error ends it at once. An error that
    arrives because the operator stopped the run is raised as KeyboardInterrupt."""
    attempts = retries.attempts
    for number in range(1, attempts + 1):
        try:
            return Attempt(number, value=call())
        except TransientError as exc:
            if interrupts.requested():
                raise KeyboardInterrupt from exc
            if number == attempts:
                return Attempt(number, error=exc)
            pause = retries.backoff_seconds * 2 ** (number - 1)
            logger.warning("%s: attempt %d of %d failed (%s); retrying in %g s", label, number, attempts, exc, pause)
            time.sleep(pause)
        except Exception as exc:
            if interrupts.requested():
                raise KeyboardInterrupt from exc
            return Attempt(number, error=exc)
    raise AssertionError("retries.attempts is at least 1")


# -- the audit trail ----------------------------------------------------------------------------------


class _AuditWriter:
    """Audit reads and writes on the warehouse, translated and retried like a task.

    A write that still fails after the retries (the warehouse is away) is kept, in order, and done
    before the next write that gets through: when the warehouse answers again, every row the run
    could not write while it was away is written, the closing of the run's row last.
    """

    def __init__(self, connections: Connections, warehouse: str, retries: RetrySpec) -> None:
        self.connections = connections
        self.warehouse = warehouse
        self.retries = retries
        self.backlog: list[tuple[str, Callable[[Any], Any]]] = []

    def write(self, action: str, call: Callable[[Any], T]) -> T:
        """``call(engine)``, retried on TransientError (after the backlog); the last error is raised."""

        def attempt() -> T:
            target = self.connections.sql_connector(self.warehouse)
            with target.translate_errors(action):
                while self.backlog:
                    self.backlog[0][1](target.engine)
                    del self.backlog[0]
                return call(target.engine)

        outcome = retrying(attempt, self.retries, f"audit: {action}")
        if outcome.error is not None:
            raise outcome.error
        return outcome.value  # type: ignore[return-value]

    def read(self, call: Callable[[Any], T]) -> T:
        return self.write("read a watermark", call)

    def write_later(self, action: str, call: Callable[[Any], Any]) -> bool:
        """Like :meth:`write`; if it still fails, the write joins the backlog (one line in the log) and
        False is returned. The run's outcome stays the tasks' own."""
        try:
            self.write(action, call)
            return True
        except EtlError as exc:
            logger.error("audit: could not %s (written when the warehouse answers again): %s", action, exc)
            self.backlog.append((action, call))
            return False


def _close_audit(writer: _AuditWriter, run_id: int, result: RunOutcome, seconds: float) -> bool:
    values = {
        "status": result.status,
        "end_execution_time": utc_now(),
        "duration_seconds": seconds,
        "number_of_records": result.rows,
        "data_min_date": encode_cursor(result.data_min),
        "data_max_date": encode_cursor(result.data_max),
        "error_message": result.error,
        "output_files": "\n".join(str(p) for p in result.outputs) or None,
    }
    closed = writer.write_later(f"close audit row {run_id}", lambda e: audit.close_run(e, run_id, values))
    if not closed:
        logger.error("audit row %s stays 'running'; the next run of the project closes it as failed", run_id)
    return closed


def _opening_values(
    plan: Plan,
    request: RunRequest,
    settings: Settings,
    windows: Mapping[str, Window],
    run_window: Window,
    started: datetime,
    warehouse_name: str,
    log_file: Path | None,
) -> dict[str, Any]:
    previous = [w.previous_max for w in windows.values() if w.previous_max is not None]
    return {
        "project": plan.project.name,
        "load_type": request.load_type.value,
        "start_load_date": encode_cursor(run_window.start) if run_window.filtered else None,
        "end_load_date": encode_cursor(run_window.end) if run_window.filtered else None,
        "start_execution_time": started,
        "previous_max_date": encode_cursor(extreme(previous, min)),
        "environment": settings.environment,
        "script_version": script_version(__version__, REPO_ROOT),
        "target_database": warehouse_name,
        "target_table": ", ".join(t.target_table for t in plan.tasks if t.target_table) or None,
        "log_file": str(log_file) if log_file else None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


# -- after the run ------------------------------------------------------------------------------------


def _finish(plan: Plan, settings: Settings, summary: RunSummary) -> None:
    """After the audit row: e-mail, delete temporary outputs, prune old logs and outputs. None of it
    changes the run's outcome; each failure is one line in the log."""
    from script_factory.report import notify

    project = plan.project
    try:
        notify(plan, settings, summary)
    except (EtlError, OSError) as exc:
        logger.error("could not send the run report: %s", describe(exc))
    for outcome in summary.outcomes:
        if outcome.result is not None and outcome.result.delete_files:
            for path in outcome.result.files:
                try:
                    path.unlink(missing_ok=True)
                    logger.info("deleted output %s (delete_after_run)", path.name)
                except OSError as exc:
                    logger.error("could not delete output %s: %s", path, exc)
    keep = project.retention
    try:
        retention.prune(
            settings.paths.logs / project.name,
            keep_days=settings.option("ETL_LOG_RETENTION_DAYS", keep.log_days, DEFAULT_KEEP_DAYS, int),
            keep_runs=settings.option("ETL_LOG_RETENTION_RUNS", keep.log_runs, DEFAULT_KEEP_RUNS, int),
            protect={summary.log_file} if summary.log_file else None,
        )
        retention.prune(
            settings.paths.output / project.name,
            keep_days=settings.option("ETL_OUTPUT_RETENTION_DAYS", keep.output_days, DEFAULT_KEEP_DAYS, int),
            keep_runs=settings.option("ETL_OUTPUT_RETENTION_RUNS", keep.output_runs, DEFAULT_KEEP_RUNS, int),
            protect=set(summary.outcome.outputs),
        )
    except (OSError, EtlError) as exc:
        logger.error("retention: could not prune old files: %s", exc)


def _log_level(settings: Settings) -> int:
    name = (settings.get("ETL_LOG_LEVEL") or "INFO").upper()
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.INFO
