"""Backfill: a date range cut into windows of N days, each loaded by a normal run, with a ledger that resumes.

Each window is one run of the runner (its own ``etl_runs`` row, under the project lock, with the
strategies of a dated window: see script_factory/load_strategies.py), so a window is loaded whole or
not at all, and re-loading it never duplicates rows. The ledger (``etl_backfill_chunks``,
script_factory/backfill_ledger.py) records each window; running the same command again resumes at the
first window that did not succeed and never reloads a window that did. ``--redo-failed`` runs only the
failed windows, ``--restart`` all of them anew.

A failed window is recorded and the backfill goes on with the next one. It stops at Ctrl-C or SIGTERM
(the window's run is rolled back and its row closed as ``interrupted``), when another run holds the
project lock (exit 3), when an upstream project is not ready (exit 5) or at a config error (exit 2).
One backfill of a project at a time: it holds ``metadata/locks/<project>.backfill.lock``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from script_factory import audit, backfill_ledger
from script_factory.audit_writer import AuditWriter
from script_factory.backfill_ledger import FAILED, INTERRUPTED, PENDING, SUCCESS, Chunk
from script_factory.context import Connections
from script_factory.exit_codes import ExitCode
from script_factory.factory import Plan
from script_factory.lock import ProjectLock
from script_factory.request import RunRequest
from script_factory.runner import run
from script_factory.settings import Settings
from utilities.dates import encode_cursor
from utilities.errors import LockedError

logger = logging.getLogger(__name__)

Emit = Callable[[str], None]
RESUME, REDO_FAILED, RESTART = "resume", "redo_failed", "restart"
_STOPS = (ExitCode.INTERRUPTED, ExitCode.LOCKED, ExitCode.UPSTREAM_NOT_READY, ExitCode.BAD_CONFIG)


@dataclass(frozen=True)
class Backfill:
    """What the command line asked for: the whole range in ``request``, windows of ``days`` days."""

    request: RunRequest
    days: int
    mode: str = RESUME

    @property
    def backfill_id(self) -> str:
        """The ledger's name for this backfill: the same command line finds the same rows."""
        r = self.request
        assert r.start_date is not None and r.end_date is not None
        tables = f" tables {','.join(r.tables)}" if r.tables else ""
        return (
            f"{r.project} {encode_cursor(r.start_date)}..{encode_cursor(r.end_date)} {self.days}d "
            f"{r.load_type.value}{tables}"
        )


def windows(start: datetime, end: datetime, days: int) -> list[tuple[datetime, datetime]]:
    """``start < cursor <= end`` cut into windows of ``days`` days (the last one may be shorter)."""
    step, cut = timedelta(days=days), []
    low = start
    while low < end:
        high = min(low + step, end)
        cut.append((low, high))
        low = high
    return cut


def run_backfill(plan: Plan, backfill: Backfill, settings: Settings, emit: Emit) -> int:
    """Run the windows the ledger says are due; returns the exit code (0: every window succeeded)."""
    request = backfill.request
    assert request.start_date is not None and request.end_date is not None
    project = plan.project
    cut = windows(request.start_date, request.end_date, backfill.days)
    try:
        with ProjectLock(settings.paths.locks, f"{project.name}.backfill"):
            return _run_windows(plan, backfill, settings, cut, emit)
    except LockedError as exc:
        if f"{project.name}.backfill" not in str(exc):
            raise
        raise LockedError(
            f"a backfill of project {project.name} is already running; wait for it to finish "
            f"(lock file {settings.paths.locks / (project.name + '.backfill.lock')})"
        ) from None


def _run_windows(
    plan: Plan, backfill: Backfill, settings: Settings, cut: Sequence[tuple[datetime, datetime]], emit: Emit
) -> int:
    project = plan.project
    connections = Connections(plan.connection_urls, settings.paths.home, settings.variables, project.name)
    writer = AuditWriter(connections, project.warehouse, project.retries)
    try:
        writer.with_engine("prepare the audit tables", audit.ensure_tables)
        backfill_id = backfill.backfill_id
        chunks = writer.write(
            "prepare the backfill ledger",
            lambda c: backfill_ledger.prepare(
                c, backfill_id, project.name, backfill.request.load_type.value, cut, backfill.mode == RESTART
            ),
        )
        due = [c for c in chunks if _due(c, backfill.mode)]
        emit(_opening(backfill, chunks, due))
        code = _run_due(plan, backfill, settings, writer, chunks, due, emit)
        final = writer.write("read the backfill ledger", lambda c: backfill_ledger.states(c, backfill_id))
    finally:
        connections.close()
    emit(summary(backfill, chunks, dict(final)))
    if code is None:
        code = ExitCode.TASK_FAILED if any(s == FAILED for _, s in final) else ExitCode.SUCCESS
    return code


def _due(chunk: Chunk, mode: str) -> bool:
    if mode == REDO_FAILED:
        return chunk.status == FAILED
    return mode == RESTART or chunk.status != SUCCESS


def _run_due(
    plan: Plan,
    backfill: Backfill,
    settings: Settings,
    writer: AuditWriter,
    chunks: Sequence[Chunk],
    due: Sequence[Chunk],
    emit: Emit,
) -> ExitCode | None:
    """One run per due window, in order; the exit code that stopped the backfill, or None."""
    clock = time.monotonic()
    for index, chunk in enumerate(due):
        writer.write(f"start backfill window {chunk.number}", partial(backfill_ledger.start, chunk_id=chunk.chunk_id))
        request = replace(backfill.request, start_date=chunk.start, end_date=chunk.end)
        try:
            summary = run(plan, request, settings)
        except LockedError as exc:  # another run of the project: the window did not start
            _close(writer, chunk, {"status": PENDING, "error_message": settings.masker(str(exc))})
            emit(f"backfill stopped: {exc}")
            return ExitCode.LOCKED
        except KeyboardInterrupt:  # between the ledger and the run: nothing of the window was written
            _close(writer, chunk, {"status": INTERRUPTED, "error_message": "interrupted (Ctrl-C or SIGTERM)"})
            return ExitCode.INTERRUPTED
        code = summary.exit_code
        status = {ExitCode.SUCCESS: SUCCESS, ExitCode.INTERRUPTED: INTERRUPTED}.get(code, FAILED)
        if code is ExitCode.UPSTREAM_NOT_READY:
            status = PENDING  # not the window's fault: it runs when the upstream is ready
        error = settings.masker(summary.outcome.error) if summary.outcome.error else None
        values = {"status": status, "rows": summary.outcome.rows, "run_id": summary.run_id, "error_message": error}
        _close(writer, chunk, values)
        left = len(due) - index - 1
        emit(_progress(chunk, len(chunks), status, summary.outcome.rows, summary.run_id, error, clock, index + 1, left))
        if code in _STOPS:
            return code
    return None


def _close(writer: AuditWriter, chunk: Chunk, values: dict[str, object]) -> None:
    writer.write_later(
        f"close backfill window {chunk.number}", lambda c: backfill_ledger.finish(c, chunk.chunk_id, values)
    )


# -- what it says ---------------------------------------------------------------------------------


def show(moment: datetime) -> str:
    """A window bound as the operator wrote it: a date when it is midnight, else the datetime."""
    if moment.hour == moment.minute == moment.second == moment.microsecond == 0 and moment.tzinfo is None:
        return moment.date().isoformat()
    return moment.isoformat(" ")


def _span(chunk: Chunk) -> str:
    return f"{show(chunk.start)}..{show(chunk.end)}"


def _progress(
    chunk: Chunk,
    total: int,
    status: str,
    rows: int,
    run_id: int | None,
    error: str | None,
    clock: float,
    done: int,
    left: int,
) -> str:
    """``chunk 12/52, 2024-03-18..2024-03-25, 41,220 rows, ETA 6 min`` (and what went wrong, if it did)."""
    line = f"chunk {chunk.number}/{total}, {_span(chunk)}, {rows:,} rows"
    if status != SUCCESS:
        line += f", {status.upper()} (run {run_id or '-'})" + (f": {error}" if error else "")
    if left:
        seconds = (time.monotonic() - clock) / done * left
        line += f", ETA {max(1, math.ceil(seconds / 60))} min" if seconds >= 30 else ", ETA <1 min"
    return line


def _opening(backfill: Backfill, chunks: Sequence[Chunk], due: Sequence[Chunk]) -> str:
    r = backfill.request
    assert r.start_date is not None and r.end_date is not None
    done = sum(1 for c in chunks if c.status == SUCCESS)
    head = (
        f"backfill {r.project} {show(r.start_date)}..{show(r.end_date)}, load type {r.load_type.value}: "
        f"{len(chunks)} window(s) of {backfill.days} day(s)"
    )
    if not due:
        return f"{head}; nothing to run ({done} done already)"
    if backfill.mode == RESTART:
        return f"{head}; starting over (--restart)"
    first = due[0]
    if backfill.mode == REDO_FAILED:
        return f"{head}; re-running the {len(due)} failed window(s) (--redo-failed)"
    resumed = f", resuming at chunk {first.number} ({_span(first)})" if done else ""
    return f"{head}; {len(due)} to run{resumed}"


def summary(backfill: Backfill, chunks: Sequence[Chunk], final: dict[int, str]) -> str:
    """The closing lines: the windows done, failed and left, and what to run next."""
    by_status: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_status.setdefault(final.get(chunk.number, chunk.status), []).append(chunk)
    done = len(by_status.get(SUCCESS, []))
    failed = by_status.get(FAILED, [])
    left = [c for s, group in by_status.items() if s not in (SUCCESS, FAILED) for c in group]
    names = f" ({', '.join(f'chunk {c.number} {_span(c)}' for c in failed[:5])}{', ...' if len(failed) > 5 else ''})"
    line = f"backfill {backfill.request.project}: {done} done, {len(failed)} failed{names if failed else ''}, "
    line += f"{len(left)} left"
    hints = []
    if left:
        hints.append("run the same command again to resume")
    if failed:
        hints.append("add --redo-failed to re-run only the failed windows")
    return line + (f"; {' and '.join(hints)}" if hints else "")
