"""``--verify`` and ``--verify --repair``: compare each table that has a cursor between its source and
its target day by day (count and checksum, see script_factory/drift.py), and reload exactly the days
that differ.

Both sides are streamed with the connectors' own readers, reading only the key and cursor columns
(where the source is SQL), so memory grows with the number of days, not of rows. Without dates a
table is compared on every day either side holds, up to its watermark: rows after it are not loaded
yet, so they are counted and named but not compared (give ``--end-date`` to compare them too). With
``--start-date``/``--end-date``, only the rows of that window (``start < cursor <= end``).

The comparison holds the project lock (exit 3 if a run holds it): a load committing between the
reads of the two sides would show as drift that is not there, and ``--repair`` would reload days for
nothing. It writes nothing. A repair is a normal run of one table and one day (its own ``etl_runs``
row, with ``purpose`` ``repair``; it takes the lock itself), which replaces that day's window; the
repaired days are then compared again, under the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import partial
from typing import Any

from connectors.base import Connector, ReadRequest
from script_factory import audit
from script_factory.config import ProjectConfig, TableSpec
from script_factory.context import Connections
from script_factory.drift import (
    DAY_RULE,
    DayDifference,
    NotADate,
    Tally,
    cursor_datetime,
    day_window,
    differences,
    moment,
)
from script_factory.exit_codes import ExitCode
from script_factory.factory import Plan, build_plan
from script_factory.outcome import describe
from script_factory.request import LoadType, RunRequest
from script_factory.retry import retrying
from script_factory.runner import run
from script_factory.settings import Settings
from script_factory.warehouse_lock import run_lock
from script_factory.window import resolve_window
from utilities.dates import utc_now, zone
from utilities.errors import FatalError

logger = logging.getLogger(__name__)

Emit = Callable[[str], None]
DRIFT = ExitCode.TASK_FAILED  # exit 1: some days differ (or could not be compared)


@dataclass
class Verdict:
    """How one table compared: the days that differ, or why it was not compared."""

    table: str
    diffs: list[DayDifference] = field(default_factory=list)
    days: int = 0
    source_rows: int = 0
    target_rows: int = 0
    bound: str = ""  # what limited the comparison: "--end-date ..." or "its watermark ..."
    after_bound: tuple[int, int] = (0, 0)  # rows after the bound (source, target), not compared
    aware: bool = False
    skipped: str | None = None  # not comparable by day (a note, not a failure)
    error: str | None = None  # could not be read (a failure)

    @property
    def agrees(self) -> bool:
        return not self.diffs and self.error is None

    @property
    def repairable(self) -> list[date]:
        return [d.day for d in self.diffs if d.day is not None]


@dataclass(frozen=True)
class _Scope:
    """What is compared: the window read on both sides (``start`` None: every row), the last cursor
    value compared (``limit``: ``--end-date``; None: the table's watermark), and for a recheck the days."""

    start: datetime | None
    end: datetime | None
    limit: datetime | None
    only: frozenset[date] | None = None


def verify_project(plan: Plan, request: RunRequest, settings: Settings, emit: Emit, repair: bool = False) -> int:
    """Compare every table with a cursor; with ``repair``, reload the days that differ and compare them
    again. Returns the exit code: 0 when every compared day agrees (after the repairs), 1 otherwise."""
    project = plan.project
    chosen = [t for t in project.tables if not request.tables or str(t.target) in request.tables]  # --tables
    tables = [t for t in chosen if t.cursor and not (t.transforms and t.transforms.in_flight)]
    for table in chosen:
        if not table.cursor:
            emit(f"{table.target}: skipped (no cursor: --verify compares a table by the day of its cursor)")
        elif table not in tables:
            emit(f"{table.target}: skipped (its rows change in flight: source and target keys differ)")
    if not tables:
        emit(f"verify {project.name}: no table has a cursor; nothing to compare")
        return ExitCode.SUCCESS
    emit(f"verify {project.name}: {DAY_RULE}; checksum of the keys and the cursor")
    scope = _Scope(request.start_date, request.end_date, request.end_date)
    verdicts = _compare_all(plan, tables, scope, settings)
    for verdict in verdicts:
        _report(verdict, emit)
    emit(_summary(project.name, verdicts))
    found = [v for v in verdicts if v.repairable]
    if not repair or not found:
        return ExitCode.SUCCESS if all(v.agrees for v in verdicts) else DRIFT
    stopped = _repair(request, settings, found, emit)
    if stopped is not None:
        return stopped
    by_name = {str(t.target): t for t in tables}
    rechecks = _compare_all(plan, [by_name[v.table] for v in found], scope, settings, {v.table: v for v in found})
    final = {v.table: v for v in verdicts} | {v.table: _recheck_report(found, v, emit) for v in rechecks}
    left = [v for v in final.values() if not v.agrees]
    emit(f"verify {project.name} after repair: " + (_summary_of(left) if left else "every compared day agrees"))
    return ExitCode.SUCCESS if not left else DRIFT


def _recheck_report(found: Sequence[Verdict], recheck: Verdict, emit: Emit) -> Verdict:
    """One line per repaired day (agrees now, or still differs); the table's verdict after the repair,
    with the differences no window repairs (NULL cursors) carried over."""
    before = next(v for v in found if v.table == recheck.table)
    if recheck.error:
        emit(f"{recheck.table}: could not be compared again: {recheck.error}")
    else:
        for day in before.repairable:
            still = next((d for d in recheck.diffs if d.day == day), None)
            emit(f"{recheck.table}  {day}  " + (f"{_counts(still)}  STILL DIFFERS" if still else "now agrees"))
    recheck.diffs += [d for d in before.diffs if d.day is None]
    return recheck


# -- comparing ------------------------------------------------------------------------------------


def _compare_all(
    plan: Plan,
    tables: Sequence[TableSpec],
    scope: _Scope,
    settings: Settings,
    repaired: dict[str, Verdict] | None = None,
) -> list[Verdict]:
    """Each table's verdict, read under the project lock (LockedError if a run holds it); with
    ``repaired``, only the days repaired in each table."""
    project = plan.project
    queries = {t.target_table: t.bound_parameters().get("sql") for t in plan.tasks if t.kind == "load"}
    connections = Connections(plan.connection_urls, settings.paths.home, settings.variables, project.name)
    try:
        with run_lock(connections.sql_connector(project.warehouse), settings.paths.locks, project.name):
            verdicts = []
            for table in tables:
                name = str(table.target)
                table_scope = _days_scope(repaired[name], scope) if repaired is not None else scope
                compare = partial(_compare, connections, project, table, queries.get(name), table_scope)
                attempt = retrying(compare, project.retries, f"verify {name}")
                if attempt.value is not None:
                    verdicts.append(attempt.value)
                elif isinstance(attempt.error, NotADate):
                    verdicts.append(Verdict(name, skipped=f"{attempt.error}; --verify compares tables by day"))
                else:
                    verdicts.append(Verdict(name, error=describe(attempt.error)))
            return verdicts
    finally:
        connections.close()


def _days_scope(verdict: Verdict, scope: _Scope) -> _Scope:
    """The window from the first repaired day's start to the last one's end, and only those days."""
    days = verdict.repairable
    start, _ = day_window(min(days), verdict.aware)
    _, end = day_window(max(days), verdict.aware)
    return _Scope(start, end, scope.limit, frozenset(days))


def _compare(
    connections: Connections, project: ProjectConfig, table: TableSpec, sql: str | None, scope: _Scope
) -> Verdict:
    """One table: both sides tallied by day in the same window, and their differences."""
    assert table.cursor is not None
    name = str(table.target)
    bound, bound_text = _bound(connections, project, table, scope)
    columns = tuple(dict.fromkeys((*table.keys, table.cursor)))
    window = resolve_window(  # for the query's own :start_date and :end_date, as a load of this window has them
        load_type=LoadType.INCREMENTAL if scope.start else LoadType.FULL,
        requested_start=scope.start,
        requested_end=scope.end,
        previous_max=None,
        initial_start=project.initial_start,
        lookback=project.lookback,
        now=utc_now(),
        source_zone=zone(project.timezone),
    )
    read = ReadRequest(
        cursor=table.cursor,
        filtered=scope.start is not None,
        window_start=scope.start,
        window_end=scope.end,
        chunk_size=table.chunk_size or project.chunk_size,
        columns=columns,
        keys=table.keys,
    )
    params = {
        "load_type": LoadType.INCREMENTAL.value if scope.start else LoadType.FULL.value,
        "run_id": None,
        "project": project.name,
        "start_date": window.start,
        "end_date": window.end,
        "previous_max_date": None,
    }
    source_read = replace(read, sql=sql, table=table.source.table, params=params, options=table.source.options)
    source = _tally(connections.connector(table.source.connection), source_read, table, bound, scope.only)
    target_connector = connections.connector(table.target_connection or project.warehouse)
    target = _tally(target_connector, replace(read, table=table.target), table, bound, scope.only)
    return Verdict(
        name,
        diffs=differences(source, target),
        days=len(source.days.keys() | target.days.keys()),
        source_rows=source.rows,
        target_rows=target.rows,
        bound=bound_text,
        after_bound=(source.after_bound, target.after_bound),
        aware=source.aware or target.aware,
    )


def _bound(
    connections: Connections, project: ProjectConfig, table: TableSpec, scope: _Scope
) -> tuple[datetime | None, str]:
    """The last cursor value compared: ``--end-date``, else the table's watermark (rows after it are
    not loaded yet), else none (the table was never loaded)."""
    if scope.limit is not None:
        return moment(scope.limit), f"up to {scope.limit.isoformat(' ')}"
    watermark = _watermark(connections, project, str(table.target))
    parsed = cursor_datetime(watermark)
    if parsed is None:
        return None, ""
    return moment(parsed), f"up to its watermark {parsed.isoformat(' ')}"


def _watermark(connections: Connections, project: ProjectConfig, table: str) -> Any:
    """The table's stored watermark; None when the warehouse holds no audit tables yet (read only)."""
    from sqlalchemy import inspect

    warehouse = connections.sql_connector(project.warehouse)
    with warehouse.translate_errors("read the watermark"), warehouse.read_connection() as conn:
        inspector = inspect(conn)
        if not all(inspector.has_table(t) for t in ("etl_runs", "etl_task_runs", "etl_table_state")):
            return None
        return audit.previous_max(conn, project.name, table)


def _tally(
    connector: Connector, request: ReadRequest, table: TableSpec, bound: datetime | None, only: frozenset[date] | None
) -> Tally:
    """One side's per-day figures, streamed chunk by chunk."""
    assert table.cursor is not None
    tally = Tally(bound=bound, only=only)
    with connector.read(request) as stream:
        keys = [_position(stream.columns, k, connector) for k in table.keys]
        cursor = _position(stream.columns, table.cursor, connector)
        for chunk in stream:
            tally.add_chunk(chunk, keys, cursor)
    return tally


def _position(columns: Sequence[str], name: str, connector: Connector) -> int:
    """Where column ``name`` is in a read (exactly, else ignoring case: Snowflake answers in capitals)."""
    if name in columns:
        return list(columns).index(name)
    folded = [c.lower() for c in columns]
    if name.lower() in folded:
        return folded.index(name.lower())
    raise FatalError(
        f"{connector.kind} connection {connector.name!r}: the read has no column {name!r} "
        f"(it has {', '.join(columns)}); check keys and cursor in project.yml"
    )


# -- repairing ------------------------------------------------------------------------------------


def _repair(request: RunRequest, settings: Settings, found: Sequence[Verdict], emit: Emit) -> int | None:
    """One run per table and day that differs, replacing the day's window. Days whose run failed are
    tried again once the others are done, while that helps (a key moved by hand from one day to
    another is freed by the other day's repair). None, or the exit code that stops everything (130)."""
    for verdict in found:
        pending = sorted(verdict.repairable)
        while pending:
            failed = []
            for day in pending:
                start, end = day_window(day, verdict.aware)
                repair = RunRequest(
                    project=request.project,
                    load_type=LoadType.INCREMENTAL,
                    start_date=start,
                    end_date=end,
                    env_name=request.env_name,
                    tables=(verdict.table,),
                    repair=True,
                )
                summary = run(build_plan(repair, settings), repair, settings)
                outcome = summary.outcome
                said = f"{summary.status}, {outcome.rows:,} rows" + (f": {outcome.error}" if outcome.error else "")
                emit(f"repair {verdict.table}  {day}: run {summary.run_id or '-'} {said}")
                if summary.exit_code is ExitCode.INTERRUPTED:
                    return ExitCode.INTERRUPTED
                if summary.exit_code is not ExitCode.SUCCESS:
                    failed.append(day)
            if len(failed) == len(pending):
                break
            if failed:
                emit(f"repair {verdict.table}: trying the {len(failed)} failed day(s) again")
            pending = failed
    return None


# -- the report -----------------------------------------------------------------------------------


def _counts(diff: DayDifference) -> str:
    checksums = "checksums differ" if diff.checksums_differ else "same checksum"
    return f"source {diff.source.count:,} / target {diff.target.count:,}  {checksums}"


def _report(verdict: Verdict, emit: Emit) -> None:
    """One line per day that differs, then one line for the table."""
    name = verdict.table
    if verdict.skipped:
        emit(f"{name}: skipped ({verdict.skipped})")
        return
    if verdict.error:
        emit(f"{name}: could not be compared: {verdict.error}")
        return
    for diff in verdict.diffs:
        if diff.day is None:
            emit(f"{name}  NULL cursor  {_counts(diff)}  (no window holds them: a full load, --load-type F, does)")
        else:
            emit(f"{name}  {diff.day}  {_counts(diff)}")
    bound = f" {verdict.bound}" if verdict.bound else ""
    state = f"{len(verdict.diffs)} differ" if verdict.diffs else "all agree"
    emit(
        f"{name}: {verdict.days} day(s) compared{bound} (source {verdict.source_rows:,} rows, "
        f"target {verdict.target_rows:,}): {state}"
    )
    source_after, target_after = verdict.after_bound
    if source_after or target_after:
        emit(
            f"{name}: not compared, after the bound: source {source_after:,} / target {target_after:,} row(s) "
            f"(not loaded yet; give --end-date to compare them)"
        )


def _summary(project: str, verdicts: Sequence[Verdict]) -> str:
    compared = [v for v in verdicts if v.skipped is None]
    left = [v for v in compared if not v.agrees]
    if not left:
        return f"verify {project}: every compared day agrees ({len(compared)} table(s))"
    hint = " (repair with --verify --repair)" if any(v.diffs for v in left) else ""
    return f"verify {project}: {_summary_of(left, len(compared))}{hint}"


def _summary_of(left: Sequence[Verdict], compared: int | None = None) -> str:
    """'3 day(s) differ in 1 of 2 table(s); 1 table(s) could not be compared' for the tables that do not agree."""
    drifted = [v for v in left if v.diffs]
    failed = [v for v in left if v.error]
    parts = []
    if drifted:
        of = f" of {compared}" if compared is not None else ""
        parts.append(f"{sum(len(v.diffs) for v in drifted)} day(s) differ in {len(drifted)}{of} table(s)")
    if failed:
        parts.append(f"{len(failed)} table(s) could not be compared")
    return "; ".join(parts)
