"""The runner: lock, audit row, tasks in order with one shared context, then outputs and clean-up.

This is the only place that catches a failing task. Everything a run produces (audit rows, the log
file, outputs, the e-mail) is decided here, in one function, in this order:

1. take the project lock (LockedError -> exit 3);
2. open the log file; create the audit tables on first use; close rows left ``running`` by a dead run;
3. resolve each table's window from its watermark; insert the ``etl_runs`` row as ``running``;
4. run the tasks in order, one ``etl_task_runs`` row each; retry TransientError with back-off;
   stop at the first failure;
5. close ``etl_runs`` as ``success`` or ``failed`` with the error; send the e-mail if asked;
6. delete outputs flagged ``delete_after_run``; prune logs and outputs; release the lock.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from script_factory import __version__, audit
from script_factory.context import RunContext
from script_factory.exit_codes import ExitCode, exit_code_for
from script_factory.factory import Plan
from script_factory.lock import ProjectLock
from script_factory.request import RunRequest
from script_factory.settings import REPO_ROOT, Settings
from script_factory.task import StepResult, Task
from script_factory.window import Window, next_watermark, resolve_window
from utilities import logs, retention
from utilities.dates import as_datetime, encode_cursor, utc_now, zone
from utilities.errors import EtlError, TransientError
from utilities.version import script_version

logger = logging.getLogger("script_factory.runner")

DEFAULT_KEEP_DAYS = 30
DEFAULT_KEEP_RUNS = 100


@dataclass
class TaskOutcome:
    task: Task
    status: str
    seconds: float
    result: StepResult | None = None
    exception: BaseException | None = None

    @property
    def error(self) -> str | None:
        return _describe(self.exception) if self.exception is not None else None


@dataclass
class RunSummary:
    """What the command line prints and the e-mail says."""

    project: str
    load_type: str
    run_id: int | None = None
    status: str = audit.FAILED
    exit_code: ExitCode = ExitCode.TASK_FAILED
    started: datetime = field(default_factory=utc_now)
    seconds: float = 0.0
    rows: int = 0
    outcomes: list[TaskOutcome] = field(default_factory=list)
    log_file: Path | None = None
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None
    data_max: Any = None


def run(plan: Plan, request: RunRequest, settings: Settings) -> RunSummary:
    """Run ``plan`` under the project lock; returns the summary (its ``exit_code`` for the scheduler).

    Raises LockedError (exit 3) if another live run holds the lock; any other failure is recorded in
    the audit row and reported through the summary.
    """
    project = plan.project
    summary = RunSummary(project=project.name, load_type=request.load_type.value)
    with ProjectLock(settings.paths.locks, project.name):
        summary.log_file = logs.install_run_log(  # None if the log file cannot be made: console only
            settings.paths.logs, project.name, summary.started.astimezone(), settings.masker, _log_level(settings)
        )
        try:
            _run_locked(plan, request, settings, summary)
        finally:
            _finish(plan, settings, summary)
            logs.remove()
    return summary


def _run_locked(plan: Plan, request: RunRequest, settings: Settings, summary: RunSummary) -> None:
    project = plan.project
    started_clock = time.perf_counter()
    logger.info(
        "run of project %s: load type %s, environment %s, %d task(s), log %s",
        project.name,
        request.load_type.value,
        settings.environment,
        len(plan.tasks),
        summary.log_file,
    )
    ctx = RunContext(
        request=request,
        project=project,
        paths=settings.paths,
        environment=settings.environment,
        connection_urls=plan.connection_urls,
        variables=settings.variables,
        windows={},
        now=summary.started,
        progress_interval=settings.option("ETL_PROGRESS_SECONDS", None, 10.0, float),
        logger=logging.getLogger(f"project.{project.name}"),
    )
    failure: BaseException | None = None
    try:
        engine = ctx.warehouse.engine
        with ctx.warehouse.translate_errors("prepare the audit tables"):
            audit.ensure_tables(engine)
            audit.close_orphans(engine, project.name)
        ctx.windows, ctx.run_window = resolve_windows(plan, request, summary.started, engine)
        opening = _opening_values(plan, request, settings, ctx, summary.log_file)
        summary.run_id = ctx.run_id = audit.open_run(engine, opening)
        for task in plan.tasks:
            outcome = _run_task(task, ctx, engine)
            summary.outcomes.append(outcome)
            if outcome.result is not None:
                summary.outputs.extend(outcome.result.files)
            if outcome.status != audit.SUCCESS:
                failure = outcome.exception
                break
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - failures outside a task: warehouse down, audit
        failure = exc
        logger.error("run failed before or between tasks: %s", _describe(exc))
        if isinstance(exc, KeyboardInterrupt):
            summary.error = "interrupted (Ctrl-C or SIGTERM)"
    finally:
        summary.seconds = time.perf_counter() - started_clock
        summary.rows = sum(o.result.rows for o in summary.outcomes if o.result and o.task.kind == "load")
        summary.exit_code = (
            exit_code_for(failure) if not isinstance(failure, KeyboardInterrupt) else ExitCode.TASK_FAILED
        )
        summary.status = audit.SUCCESS if failure is None else audit.FAILED
        summary.error = summary.error or (_describe(failure) if failure is not None else None)
        _close_audit(ctx, summary)
        ctx.close()
    if isinstance(failure, KeyboardInterrupt):
        raise failure


def _run_task(task: Task, ctx: RunContext, engine: Any) -> TaskOutcome:
    """Run one task with retries on TransientError; record its ``etl_task_runs`` row."""
    window = ctx.windows.get(task.target_table) if task.target_table else None
    attempts = ctx.project.retries.attempts
    started = utc_now()
    task_run_id = audit.start_task(
        engine,
        {
            "run_id": ctx.run_id,
            "project": ctx.project.name,
            "task_name": task.name,
            "task_kind": task.kind,
            "target_table": task.target_table,
            "start_time": started,
            "window_start": encode_cursor(window.start) if window and window.filtered else None,
            "window_end": encode_cursor(window.end) if window and window.filtered else None,
            "previous_max_date": encode_cursor(window.previous_max) if window else None,
        },
    )
    logger.info("task %s: started", task.name)
    clock = time.perf_counter()
    result: StepResult | None = None
    error: BaseException | None = None
    attempt = 0
    for attempt in range(1, attempts + 1):
        try:
            result = task.run(ctx)
            error = None
            break
        except TransientError as exc:
            error = exc
            if attempt < attempts:
                pause = ctx.project.retries.backoff_seconds * 2 ** (attempt - 1)
                logger.warning(
                    "task %s: attempt %d of %d failed (%s); retrying in %.0f s",
                    task.name,
                    attempt,
                    attempts,
                    exc,
                    pause,
                )
                time.sleep(pause)
        except Exception as exc:  # noqa: BLE001 - the one place a failing task is caught
            error = exc
            break
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: close the task's row, then unwind the run
            audit.finish_task(
                engine,
                task_run_id,
                {
                    "status": audit.FAILED,
                    "attempts": attempt,
                    "end_time": utc_now(),
                    "error_message": "interrupted (Ctrl-C or SIGTERM)",
                },
            )
            raise
    seconds = time.perf_counter() - clock
    status = audit.SUCCESS if error is None else audit.FAILED
    values: dict[str, Any] = {"status": status, "attempts": attempt, "end_time": utc_now(), "duration_seconds": seconds}
    if result is not None:
        values.update(
            rows=result.rows,
            rows_per_second=result.rows / seconds if seconds > 0 and result.rows else None,
            data_min_date=encode_cursor(result.data_min),
            data_max_date=encode_cursor(result.data_max),
            watermark=encode_cursor(next_watermark(window, result.data_max)) if window else None,
            message=result.message,
            strategy=result.strategy,
        )
    if error is not None:
        values["error_message"] = _describe(error)
        logger.error(
            "task %s: FAILED after %.1f s: %s",
            task.name,
            seconds,
            _describe(error),
            exc_info=error if not isinstance(error, EtlError) else None,
        )
    else:
        logger.info(
            "task %s: done in %.1f s%s", task.name, seconds, f" ({result.message})" if result and result.message else ""
        )
    audit.finish_task(engine, task_run_id, values)
    return TaskOutcome(task, status, seconds, result, error)


def resolve_windows(
    plan: Plan, request: RunRequest, now: datetime, engine: Any | None
) -> tuple[dict[str, Window], Window]:
    """Each table's window (from its own watermark), and the run's window for tables-free tasks.

    ``engine`` None means the watermark cannot be read (``--dry-run`` without an audit table).
    """
    project = plan.project
    windows: dict[str, Window] = {}
    for table in project.tables:
        key = str(table.target)
        previous = None
        if engine is not None and table.cursor:
            previous = audit.previous_max(engine, project.name, key)
        windows[key] = _window(project, request, previous, now)
    run_window = _window(project, request, None, now)
    if windows:
        starts = [w.start for w in windows.values()]
        earliest = _pick(starts, min)
        run_window = next(w for w in windows.values() if w.start is earliest)
    return windows, run_window


def _window(project: Any, request: RunRequest, previous: Any, now: datetime) -> Window:
    return resolve_window(
        load_type=request.load_type,
        requested_start=request.start_date,
        requested_end=request.end_date,
        previous_max=previous,
        initial_start=project.initial_start,
        lookback=project.lookback,
        now=now,
        source_zone=zone(project.timezone),
    )


def _opening_values(
    plan: Plan, request: RunRequest, settings: Settings, ctx: RunContext, log_file: Path | None
) -> dict[str, Any]:
    window = ctx.run_window
    previous = [w.previous_max for w in ctx.windows.values() if w.previous_max is not None]
    return {
        "project": plan.project.name,
        "load_type": request.load_type.value,
        "start_load_date": encode_cursor(window.start) if window.filtered else None,
        "end_load_date": encode_cursor(window.end) if window.filtered else None,
        "start_execution_time": ctx.now,
        "previous_max_date": encode_cursor(_pick(previous, min)) if previous else None,
        "environment": settings.environment,
        "script_version": script_version(__version__, REPO_ROOT),
        "target_database": ctx.warehouse.database_name,
        "target_table": ", ".join(t.target_table for t in plan.tasks if t.target_table) or None,
        "log_file": str(log_file) if log_file else None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def _close_audit(ctx: RunContext, summary: RunSummary) -> None:
    if summary.run_id is None:
        return
    loads = [o.result for o in summary.outcomes if o.task.kind == "load" and o.result is not None]
    data_min = _pick([r.data_min for r in loads if r.data_min is not None], min)
    data_max = _pick([r.data_max for r in loads if r.data_max is not None], max)
    summary.data_max = data_max
    values = {
        "status": summary.status,
        "end_execution_time": utc_now(),
        "duration_seconds": summary.seconds,
        "number_of_records": summary.rows,
        "data_min_date": encode_cursor(data_min),
        "data_max_date": encode_cursor(data_max),
        "error_message": summary.error,
        "output_files": "\n".join(str(p) for p in summary.outputs) or None,
    }
    try:
        audit.close_run(ctx.warehouse.engine, summary.run_id, values)
    except Exception as exc:  # noqa: BLE001 - the warehouse went away mid-run: the next run closes the row as failed
        logger.error("could not close audit row %s: %s", summary.run_id, _describe(exc))
        if summary.exit_code is ExitCode.SUCCESS:
            summary.exit_code = ExitCode.TASK_FAILED
            summary.status = audit.FAILED
    logger.info(
        "run %s of project %s: %s, %s rows in %.1f s",
        summary.run_id,
        summary.project,
        summary.status.upper(),
        f"{summary.rows:,}",
        summary.seconds,
    )


def _finish(plan: Plan, settings: Settings, summary: RunSummary) -> None:
    """After the audit row: e-mail, delete temporary outputs, prune old logs and outputs."""
    from script_factory.report import notify

    project = plan.project
    try:
        notify(plan, settings, summary)
    except Exception as exc:  # noqa: BLE001 - a mail failure never changes the outcome of the loads
        logger.error("could not send the run report: %s", _describe(exc))
    for outcome in summary.outcomes:
        if outcome.result is not None and outcome.result.delete_files:
            for path in outcome.result.files:
                path.unlink(missing_ok=True)
                logger.info("deleted output %s (delete_after_run)", path.name)
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
            protect=set(summary.outputs),
        )
    except (OSError, EtlError) as exc:
        logger.error("retention: could not prune old files: %s", exc)


def _pick(values: list[Any], choose: Any) -> Any:
    """``min``/``max`` of cursor values that may mix dates, datetimes and ISO text; None if empty."""
    if not values:
        return None
    try:
        return choose(values)
    except TypeError:
        try:
            keyed = [(as_datetime(v), v) for v in values]
            return choose(keyed, key=lambda pair: pair[0])[1]
        except TypeError:
            return values[0]


def _describe(error: BaseException | None) -> str:
    if error is None:
        return ""
    if isinstance(error, EtlError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _log_level(settings: Settings) -> int:
    name = (settings.get("ETL_LOG_LEVEL") or "INFO").upper()
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.INFO
