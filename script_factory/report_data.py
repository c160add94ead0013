"""What the HTML report shows, read from the audit tables: bounded queries, plain values, secrets masked.

Every read is bounded whatever the history holds (10,000 runs read as at most ``MAX_POINTS`` rows per
series, the lists as their latest few), so the report stays small. Tables that an older version did not
create (``etl_profiles``) or that another feature owns (``etl_backfill_chunks``) are read only when they
exist, and the backfill ledger by the column names it has.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, desc, func, inspect, select

from script_factory import audit
from utilities.dates import utc_now

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

MAX_POINTS = 20_000  # load records read for the charts (the latest), whatever the history
LATEST = 50  # rows of each list (runs, failures, checks, backfill chunks)
TRAILING = 10  # runs of the trailing median a table's volume is compared with
BAND = 0.5  # a load's rows outside median * (1 +- BAND) (and off by more than SLACK rows) is an anomaly
SLACK = 10
NULL_JUMP = 10.0  # percentage points above the median of a column's earlier profiles
BACKFILL = "etl_backfill_chunks"


@dataclass(frozen=True)
class Run:
    run_id: int
    project: str
    status: str
    load_type: str
    started: datetime
    seconds: float | None
    rows: int | None
    error: str | None


@dataclass(frozen=True)
class Load:
    """One table's load in one run."""

    run_id: int
    project: str
    table: str
    status: str
    started: datetime
    seconds: float | None
    rows: int | None
    anomaly: str | None = None  # why the volume is outside its band


@dataclass(frozen=True)
class ProfileColumn:
    column: str
    data_type: str | None
    rows: int | None
    null_pct: float | None
    distinct: int | None
    low: str | None
    high: str | None
    max_length: int | None
    null_jump: str | None  # why the null % is flagged


@dataclass(frozen=True)
class Profile:
    project: str
    table: str
    run_id: int
    columns: tuple[ProfileColumn, ...]


@dataclass
class ReportData:
    generated: datetime
    since: datetime
    days: int
    project: str | None
    database: str
    total_runs: int = 0
    runs: list[Run] = field(default_factory=list)  # the window's runs, oldest first (at most MAX_POINTS)
    loads: dict[tuple[str, str], list[Load]] = field(default_factory=dict)  # (project, table) -> oldest first
    failures: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)  # each project's latest run's results
    check_totals: list[dict[str, Any]] = field(default_factory=list)  # the window, by severity and status
    state: list[dict[str, Any]] = field(default_factory=list)
    backfill: list[dict[str, Any]] | None = None  # None: no ledger table in this warehouse
    backfill_totals: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)

    @property
    def anomalies(self) -> list[Load]:
        found = [load for loads in self.loads.values() for load in loads if load.anomaly]
        return sorted(found, key=lambda load: load.run_id, reverse=True)


def read_report(
    engine: Engine | None, project: str | None, days: int, mask: Callable[[str], str], database: str = ""
) -> ReportData:
    """The report's data for ``project`` (all projects when None) over the last ``days`` days; a warehouse
    with no audit table yet (``engine`` None, or no ``etl_runs``) gives an empty report."""
    now = utc_now()
    data = ReportData(now, now - timedelta(days=days), days, project, mask(database))
    if engine is None:
        return data
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        if "etl_runs" not in tables:
            return data
        _runs(conn, data, mask)
        if "etl_task_runs" in tables:
            _loads(conn, data)
            _failures(conn, data, mask)
        if "etl_dq_results" in tables:
            _checks(conn, data, mask)
        if "etl_table_state" in tables:
            _state(conn, data)
        if "etl_profiles" in tables:
            _profiles(conn, data)
        if BACKFILL in tables:
            _backfill(conn, data, mask)
    return data


def _mine(column: Any, project: str | None) -> list[Any]:
    return [column == project] if project is not None else []


def _runs(conn: Connection, data: ReportData, mask: Callable[[str], str]) -> None:
    r = audit.etl_runs
    where = and_(r.c.start_execution_time >= data.since, *_mine(r.c.project, data.project))
    data.total_runs = int(conn.execute(select(func.count()).select_from(r).where(where)).scalar_one())
    query = (
        select(
            r.c.run_id,
            r.c.project,
            r.c.status,
            r.c.load_type,
            r.c.start_execution_time,
            r.c.duration_seconds,
            r.c.number_of_records,
            r.c.error_message,
        )
        .where(where)
        .order_by(desc(r.c.run_id))
        .limit(MAX_POINTS)
    )
    rows = conn.execute(query).all()
    data.runs = [
        Run(int(i), p, s, t or "?", _utc(at), _float(sec), _int(n), mask(e) if e else None)
        for i, p, s, t, at, sec, n, e in reversed(rows)
    ]


def _loads(conn: Connection, data: ReportData) -> None:
    t, r = audit.etl_task_runs, audit.etl_runs
    query = (
        select(t.c.run_id, t.c.project, t.c.target_table, t.c.status, t.c.start_time, t.c.duration_seconds, t.c.rows)
        .join(r, r.c.run_id == t.c.run_id)
        .where(
            t.c.task_kind == "load",
            t.c.target_table.is_not(None),
            r.c.start_execution_time >= data.since,
            *_mine(t.c.project, data.project),
        )
        .order_by(desc(t.c.task_run_id))
        .limit(MAX_POINTS)
    )
    series: dict[tuple[str, str], list[Load]] = {}
    for run_id, project, table, status, at, seconds, rows in reversed(conn.execute(query).all()):
        series.setdefault((project, table), []).append(
            Load(int(run_id), project, table, status, _utc(at), _float(seconds), _int(rows))
        )
    data.loads = {key: flag_volumes(loads) for key, loads in sorted(series.items())}


def flag_volumes(loads: Sequence[Load]) -> list[Load]:
    """Each successful load whose rows fall outside the band around the trailing median of the
    ``TRAILING`` successful loads before it (at least three) gets ``anomaly``."""
    out: list[Load] = []
    before: list[int] = []
    for load in loads:
        if load.status != "success" or load.rows is None:
            out.append(load)
            continue
        rows = load.rows
        if len(before) >= 3:
            median = statistics.median(before[-TRAILING:])
            low, high = median * (1 - BAND), median * (1 + BAND)
            if (rows < low or rows > high) and abs(rows - median) > SLACK:
                runs = len(before[-TRAILING:])
                why = f"{rows:,} rows against a median of {median:,.0f} over the {runs} runs before"
                load = replace(load, anomaly=why)
        before.append(rows)
        out.append(load)
    return out


def _failures(conn: Connection, data: ReportData, mask: Callable[[str], str]) -> None:
    t, r = audit.etl_task_runs, audit.etl_runs
    query = (
        select(r.c.run_id, r.c.project, r.c.start_execution_time, t.c.task_name, t.c.error_message, r.c.error_message)
        .outerjoin(t, and_(t.c.run_id == r.c.run_id, t.c.status == "failed"))
        .where(r.c.status == "failed", r.c.start_execution_time >= data.since, *_mine(r.c.project, data.project))
        .order_by(desc(r.c.run_id))
        .limit(LATEST)
    )
    data.failures = [
        {"run_id": i, "project": p, "started": _utc(at), "task": task or "-", "error": mask(te or re or "")}
        for i, p, at, task, te, re in conn.execute(query).all()
    ]


def _checks(conn: Connection, data: ReportData, mask: Callable[[str], str]) -> None:
    d, r = audit.etl_dq_results, audit.etl_runs
    in_window = and_(r.c.start_execution_time >= data.since, *_mine(r.c.project, data.project))
    totals = (
        select(d.c.severity, d.c.status, d.c.check_kind, func.count())
        .join(r, r.c.run_id == d.c.run_id)
        .where(in_window)
        .group_by(d.c.severity, d.c.status, d.c.check_kind)
        .order_by(d.c.severity, d.c.status, d.c.check_kind)
    )
    data.check_totals = [
        {"severity": s, "status": st, "kind": k, "count": int(n)} for s, st, k, n in conn.execute(totals).all()
    ]
    latest = (
        select(func.max(d.c.run_id)).join(r, r.c.run_id == d.c.run_id).where(in_window).group_by(d.c.project)
    ).scalar_subquery()
    query = (
        select(d)
        .where(d.c.run_id.in_(latest))
        .order_by(d.c.status, d.c.severity, d.c.result_id)  # fail before pass
        .limit(LATEST * 4)
    )
    data.checks = [
        {**row, "detail": mask(row["detail"] or "")} for row in (dict(m) for m in conn.execute(query).mappings())
    ]


def _state(conn: Connection, data: ReportData) -> None:
    s, t = audit.etl_table_state, audit.etl_task_runs
    last_success = (
        select(t.c.project, t.c.target_table, func.max(t.c.end_time).label("last_success"))
        .where(t.c.task_kind == "load", t.c.status == "success", *_mine(t.c.project, data.project))
        .group_by(t.c.project, t.c.target_table)
        .subquery()
    )
    query = (
        select(s, last_success.c.last_success)
        .outerjoin(
            last_success,
            and_(last_success.c.project == s.c.project, last_success.c.target_table == s.c.target_table),
        )
        .where(*_mine(s.c.project, data.project))
        .order_by(s.c.project, s.c.target_table)
        .limit(LATEST * 10)
    )
    data.state = [dict(m) for m in conn.execute(query).mappings()]


def _profiles(conn: Connection, data: ReportData) -> None:
    p = audit.etl_profiles
    mine = _mine(p.c.project, data.project)
    latest = select(p.c.project, p.c.table_name, func.max(p.c.run_id).label("run_id"))
    latest_runs = conn.execute(latest.where(*mine).group_by(p.c.project, p.c.table_name).limit(LATEST * 4)).all()
    for project, table, run_id in sorted(latest_runs):
        runs = (
            select(p.c.run_id)
            .distinct()
            .where(p.c.project == project, p.c.table_name == table, p.c.run_id < run_id)
            .order_by(desc(p.c.run_id))
            .limit(TRAILING)
        )
        earlier = [int(r) for (r,) in conn.execute(runs).all()]
        history: dict[str, list[float]] = {}
        if earlier:
            rows = conn.execute(
                select(p.c.column_name, p.c.null_pct).where(
                    p.c.project == project, p.c.table_name == table, p.c.run_id.in_(earlier)
                )
            ).all()
            for column, pct in rows:
                if pct is not None:
                    history.setdefault(column, []).append(float(pct))
        current = conn.execute(
            select(p).where(p.c.project == project, p.c.table_name == table, p.c.run_id == run_id)
            .order_by(p.c.profile_id)
        ).mappings()  # fmt: skip
        columns = tuple(_profile_column(dict(m), history.get(m["column_name"], [])) for m in current)
        data.profiles.append(Profile(project, table, int(run_id), columns))


def _profile_column(row: dict[str, Any], history: list[float]) -> ProfileColumn:
    pct = _float(row["null_pct"])
    jump = None
    if pct is not None and history:
        median = statistics.median(history)
        if pct - median >= NULL_JUMP:
            jump = f"null {pct:.1f}% against a median of {median:.1f}% over {len(history)} earlier loads"
    return ProfileColumn(
        row["column_name"],
        row["data_type"],
        _int(row["rows"]),
        pct,
        _int(row["distinct_count"]),
        row["min_value"],
        row["max_value"],
        _int(row["max_length"]),
        jump,
    )


def _backfill(conn: Connection, data: ReportData, mask: Callable[[str], str]) -> None:
    """The backfill ledger (issue 12): the latest chunks, and the chunks and rows per backfill and status."""
    b = audit.etl_backfill_chunks
    shown = [
        b.c.backfill_id.label("backfill"),
        b.c.project,
        b.c.window_start,
        b.c.window_end,
        b.c.status,
        b.c.rows,
        b.c.attempts,
        b.c.run_id,
        b.c.started_at.label("started"),
        b.c.ended_at.label("finished"),
        b.c.error_message.label("error"),
    ]
    where = _mine(b.c.project, data.project)
    query = select(*shown).where(*where).order_by(desc(b.c.backfill_id), desc(b.c.window_start))
    data.backfill = [
        {k: (mask(str(v)) if k == "error" and v is not None else v) for k, v in m.items()}
        for m in conn.execute(query.limit(LATEST * 2)).mappings()
    ]
    group = [b.c.backfill_id.label("backfill"), b.c.project, b.c.status]
    totals = (
        select(*group, func.count().label("chunks"), func.sum(b.c.rows).label("rows"))
        .where(*where)
        .group_by(b.c.backfill_id, b.c.project, b.c.status)
        .limit(LATEST * 4)
    )
    data.backfill_totals = [dict(m) for m in conn.execute(totals).mappings()]


def figures(check: Mapping[str, Any]) -> str:
    """A reconciled figure's source, target and difference, as ``s / t / d`` (empty for a check)."""
    return " / ".join(str(check[k]) for k in ("source_value", "target_value", "difference") if check.get(k) is not None)


def _utc(value: Any) -> datetime:
    moment = audit.as_utc(value)
    assert moment is not None
    return moment


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
