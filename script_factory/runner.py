"""The runner: lock, audit row, tasks in order with one shared context, then outputs and clean-up.

This is the only place that catches a failing task. Everything a run produces (audit rows, the log
file, outputs, the e-mail) is decided here, in this order:

1. take the project lock (LockedError -> exit 3); open the log file;
2. create the audit tables on first use; close rows left ``running`` by a dead run;
3. resolve each table's window from its watermark; insert the ``etl_runs`` row as ``running``; check
   the upstream projects of ``depends_on`` (not ready: the row is closed as ``skipped``, exit 5);
4. run the tasks in order, one ``etl_task_runs`` row each; retry TransientError with back-off;
   stop at the first failure (or at Ctrl-C / SIGTERM), except a load with ``continue_on_error``: the
   other loads still run, and the tasks after the loads are recorded as skipped. With ``parallel: N``
   the loads run on up to N threads (script_factory/parallel.py decides when each starts);
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
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from script_factory import __version__, audit
from script_factory.audit_writer import AuditWriter
from script_factory.context import Connections, RunContext
from script_factory.factory import Plan
from script_factory.outcome import (
    FAILED,
    INTERRUPTED,
    ROLLED_BACK,
    SKIPPED,
    SUCCESS,
    RunOutcome,
    RunSummary,
    TaskOutcome,
    decide,
    describe,
)
from script_factory.parallel import run_at_once
from script_factory.publish import RunTransaction
from script_factory.request import RunRequest
from script_factory.retry import retrying
from script_factory.settings import REPO_ROOT, Settings
from script_factory.task import StepResult, Task
from script_factory.upstream import check_upstreams
from script_factory.warehouse_lock import run_lock
from script_factory.window import Window, next_watermark, resolve_windows
from utilities import interrupts, logs, retention
from utilities.dates import encode_cursor, extreme, utc_now
from utilities.errors import DataQualityError, EtlError, UpstreamNotReady
from utilities.version import script_version

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from connectors.sql import SqlConnector

logger = logging.getLogger("script_factory.runner")

DEFAULT_KEEP_DAYS = 30
DEFAULT_KEEP_RUNS = 100


def run(plan: Plan, request: RunRequest, settings: Settings) -> RunSummary:
    """Run ``plan`` under the project lock; returns the summary (its ``exit_code`` for the scheduler).

    Raises LockedError (exit 3) if another live run holds the lock; any other failure is recorded in
    the audit row and reported through the summary (an interruption too: exit code 130).
    """
    project = plan.project
    started = utc_now()
    lock_connections = Connections(plan.connection_urls, settings.paths.home, settings.variables, project.name)
    warehouse = lock_connections.sql_connector(project.warehouse)
    with run_lock(warehouse, settings.paths.locks, project.name, request.tables) as lock:
        log_file = logs.install_run_log(  # None if the log file cannot be made: console only
            settings.paths.logs, project.name, started.astimezone(), settings.masker, _log_level(settings)
        )
        try:
            summary = _execute(plan, request, settings, started, log_file, lock.scope)
            _finish(plan, settings, summary)
        finally:
            logs.remove()
    return summary


def _execute(
    plan: Plan,
    request: RunRequest,
    settings: Settings,
    started: datetime,
    log_file: Path | None,
    scope: tuple[str, ...] | None = None,
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
    for note in plan.notes:
        logger.info("%s", note)
    connections = Connections(plan.connection_urls, settings.paths.home, settings.variables, project.name)
    outcomes: list[TaskOutcome] = []
    failure: BaseException | None = None
    interrupted = False
    run_id: int | None = None
    writer = AuditWriter(connections, project.warehouse, project.retries)
    warehouse = connections.sql_connector(project.warehouse)
    publish = RunTransaction(plan.tasks, project.publish, warehouse)
    try:
        writer.with_engine("prepare the audit tables", audit.ensure_tables)
        windows, run_window = resolve_windows(
            project,
            request,
            started,
            lambda table: writer.write("read a watermark", lambda c: audit.previous_max(c, project.name, table)),
        )
        opening = _opening_values(plan, request, settings, windows, run_window, started, warehouse, log_file)
        # a lock of some tables: only a dead run of exactly those tables can be closed (others may be live)
        orphans: bool | str = True if scope is None else (opening["target_table"] or False)
        run_id = writer.write("open the audit row", lambda conn: audit.open_run(conn, project.name, opening, orphans))
        if project.depends_on:  # before any task: nothing but the warehouse has been connected
            writer.write(
                "check the upstream projects",
                lambda conn: check_upstreams(conn, project.name, project.depends_on, started),
            )
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
        for step in _steps(plan.tasks, project.parallel):
            if len(step) > 1:  # the loads, at once (publish: run never meets parallel: refused in project.yml)
                tasks = [plan.tasks[i] for i in step]
                if not run_at_once(tasks, project.parallel, lambda t: _run_task(t, ctx, writer), outcomes):
                    break
                continue
            index = step[0]
            task = plan.tasks[index]
            publish.before(index)
            if reason := _skip_reason(task, outcomes, project.skip_when_no_data):
                outcomes.append(_skip(task, ctx, writer, reason))
                publish.after(index)
                continue
            outcome = _run_task(task, ctx, writer, publish.inside(index))
            outcomes.append(outcome)
            if outcome.status != SUCCESS and not task.continue_on_error:
                break
            publish.after(index)  # continue_on_error never meets publish: run (refused in project.yml)
    except KeyboardInterrupt:
        interrupted = True
        logger.error("run interrupted (Ctrl-C or SIGTERM): open loads are rolled back")
    except UpstreamNotReady as exc:
        failure = exc
        logger.error("run skipped: %s", exc)
    except Exception as exc:
        if interrupts.requested():
            interrupted = True
            logger.error("run interrupted (Ctrl-C or SIGTERM): open loads are rolled back")
        else:
            failure = exc
            logger.error("run failed before or between tasks: %s", describe(exc))
            logger.debug("traceback", exc_info=exc)
    if publish.abandon() and run_id is not None:
        _record_unpublished(writer, run_id, project.name, outcomes, publish)
        _record_check_failures(writer, [o for i, o in enumerate(outcomes) if publish.inside(i)])
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


def _steps(tasks: tuple[Task, ...], parallel: int) -> list[tuple[int, ...]]:
    """The task indexes in the order they run: one at a time, except the loads with ``parallel`` over 1,
    which form one step (they are listed together, between before_load and after_load)."""
    loads = tuple(i for i, t in enumerate(tasks) if t.kind == "load")
    if parallel < 2 or len(loads) < 2:
        return [(i,) for i in range(len(tasks))]
    first = loads[0]
    assert loads == tuple(range(first, first + len(loads))), "the factory lists the loads together"
    return [*((i,) for i in range(first)), loads, *((i,) for i in range(loads[-1] + 1, len(tasks)))]


def _run_task(task: Task, ctx: RunContext, writer: AuditWriter, in_run_transaction: bool = False) -> TaskOutcome:
    """Run one task with retries on TransientError; record its ``etl_task_runs`` row. The failures of
    its quality checks are recorded when its transaction has rolled back (by the run, for a task inside
    the run's transaction)."""
    window = ctx.windows.get(task.target_table) if task.target_table else None
    opening = {
        **_task_row(ctx.run_id, ctx.project.name, task),
        "window_start": encode_cursor(window.start) if window and window.filtered else None,
        "window_end": encode_cursor(window.end) if window and window.filtered else None,
        "previous_max_date": encode_cursor(window.previous_max) if window else None,
    }
    try:
        task_run_id = writer.write(f"record the start of task {task.name}", lambda c: audit.start_task(c, opening))
    except EtlError as exc:  # the warehouse is away: the task does not start, and fails
        logger.error("task %s: not started: %s", task.name, exc)
        return TaskOutcome(task, FAILED, 0.0, 0, None, exc)
    logger.info("task %s: started", task.name)
    clock = time.perf_counter()
    task_ctx = replace(ctx, task_run_id=task_run_id)
    try:
        attempt = retrying(lambda: task.run(task_ctx), ctx.project.retries, f"task {task.name}")
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: close the task's row, then unwind the run
        writer.write_later(
            f"close task {task.name}",
            lambda c: audit.finish_task(
                c, task_run_id, {"status": FAILED, "end_time": utc_now(), "error_message": INTERRUPTED}
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
    writer.write_later(f"close task {task.name}", lambda c: audit.finish_task(c, task_run_id, values))
    if not in_run_transaction:
        _record_check_failures(writer, [outcome])
    return outcome


def _skip_reason(task: Task, outcomes: list[TaskOutcome], skip_when_no_data: bool) -> str | None:
    """Why ``task`` does not run, or None: a table load failed and the run went on (continue_on_error),
    so nothing after the loads runs; or ``skip_when_no_data`` and no table had new rows."""
    failed = [o.task.name for o in outcomes if o.status == FAILED]
    if failed and task.kind != "load":
        return f"a table load failed ({', '.join(failed)}); continue_on_error runs only the other loads"
    if not skip_when_no_data or task.kind not in ("aggregation", "output"):
        return None
    loads = [o for o in outcomes if o.task.kind == "load"]
    if loads and all(o.result is not None and o.result.no_data for o in loads):
        return "no table had new rows (skip_when_no_data)"
    return None


def _skip(task: Task, ctx: RunContext, writer: AuditWriter, reason: str) -> TaskOutcome:
    logger.info("task %s: skipped, %s", task.name, reason)
    row = {**_task_row(ctx.run_id, ctx.project.name, task), "end_time": utc_now(), "message": f"skipped: {reason}"}
    writer.write_later(f"record task {task.name} (skipped)", _task_row_writer(row, SKIPPED))
    return TaskOutcome(task, SKIPPED, 0.0, 0)


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


# -- the audit trail ----------------------------------------------------------------------------------


def _record_check_failures(writer: AuditWriter, outcomes: list[TaskOutcome]) -> None:
    """The check results a failing gate or check task carried out of its rolled-back transaction."""
    for outcome in outcomes:
        error = outcome.exception
        if isinstance(error, DataQualityError) and error.results:
            writer.write_later(f"record the checks of task {outcome.task.name}", _dq_writer(error.results))


def _record_unpublished(
    writer: AuditWriter, run_id: int, project: str, outcomes: list[TaskOutcome], publish: RunTransaction
) -> None:
    """The task rows of the run's transaction were rolled back with it: write them again, saying what
    happened (a task that succeeded is ``rolled_back``: its writes were not published)."""
    for index, outcome in enumerate(outcomes):
        if not publish.inside(index):
            continue
        row = {
            **_task_row(run_id, project, outcome.task),
            "end_time": utc_now(),
            "attempts": outcome.attempts,
            "duration_seconds": outcome.seconds,
            "error_message": outcome.error or "not published: publish: run publishes all of the run or nothing",
        }
        status = FAILED if outcome.status == FAILED else ROLLED_BACK
        writer.write_later(f"record task {outcome.task.name} (rolled back)", _task_row_writer(row, status))


def _task_row(run_id: int | None, project: str, task: Task) -> dict[str, Any]:
    """The columns every ``etl_task_runs`` row starts with."""
    return {
        "run_id": run_id,
        "project": project,
        "task_name": task.name,
        "task_kind": task.kind,
        "target_table": task.target_table,
        "start_time": utc_now(),
    }


def _dq_writer(rows: tuple[Mapping[str, Any], ...]) -> Callable[[Connection], None]:
    def write(conn: Connection) -> None:
        for row in rows:
            audit.record_dq_result(conn, row)

    return write


def _task_row_writer(row: Mapping[str, Any], status: str) -> Callable[[Connection], None]:
    """Writes a task row that is closed from the start (``status``)."""

    def write(conn: Connection) -> None:
        audit.finish_task(
            conn, audit.start_task(conn, {k: v for k, v in row.items() if k != "status"}), {"status": status}
        )

    return write


def _close_audit(writer: AuditWriter, run_id: int, result: RunOutcome, seconds: float) -> bool:
    values = {
        "status": result.status,
        "end_execution_time": utc_now(),
        "duration_seconds": seconds,
        "number_of_records": result.rows,
        "source_records": result.source_rows,
        "data_min_date": encode_cursor(result.data_min),
        "data_max_date": encode_cursor(result.data_max),
        "error_message": result.error,
        "output_files": "\n".join(str(p) for p in result.outputs) or None,
    }
    closed = writer.write_later(f"close audit row {run_id}", lambda c: audit.close_run(c, run_id, values))
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
    warehouse: SqlConnector,
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
        "target_database": warehouse.database_name,
        "target_table": ", ".join(t.target_table for t in plan.tasks if t.target_table) or None,
        "log_file": str(log_file) if log_file else None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "purpose": "repair" if request.repair else None,
        "orchestrator_run_id": request.orchestrator_run_id,
    }


# -- after the run ------------------------------------------------------------------------------------


def _finish(plan: Plan, settings: Settings, summary: RunSummary) -> None:
    """After the audit row: e-mail, delete temporary outputs, prune old logs and outputs. None of it
    changes the run's outcome; each failure is one line in the log."""
    project = plan.project
    if project.email is not None:  # smtplib, ssl and the e-mail package only for a project that mails
        from script_factory.report import notify

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
