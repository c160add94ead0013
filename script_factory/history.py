"""``--history`` and ``--status``: what happened, read from the audit tables of the warehouse.

Both only read. Every line goes through the settings' masker, and neither shows a URL with its password
(the warehouse is named by its masked URL), so nothing secret is printed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, inspect, select

from script_factory import audit, lock
from script_factory.audit import etl_backfill_chunks, etl_runs, etl_table_state, etl_task_runs
from script_factory.config import ProjectConfig
from script_factory.context import Connections
from script_factory.factory import load_project_config, project_names
from script_factory.settings import DEFAULT_WAREHOUSE_URL, WAREHOUSE_CONNECTION, Settings
from script_factory.upstream import age_text, not_ready
from utilities.dates import utc_now
from utilities.errors import ConfigError
from utilities.secrets import Secret

if TYPE_CHECKING:
    from sqlalchemy import Connection

ERROR_WIDTH = 80
NEXT_RUNS = 3


def history_text(settings: Settings, project: str | None, last: int) -> str:
    """The latest ``last`` runs (of ``project``, else of every project in the default warehouse), newest first."""
    config = load_project_config(project, settings) if project else None
    with _warehouse(settings, config) as (conn, where):
        if conn is None:
            return f"no runs recorded yet in {where}"
        query = select(etl_runs).order_by(etl_runs.c.run_id.desc()).limit(last)
        if project:
            query = query.where(etl_runs.c.project == project)
        rows = list(conn.execute(query).mappings())
    if not rows:
        return f"no runs of {project} recorded yet in {where}" if project else f"no runs recorded yet in {where}"
    header = ("run", "project", "type", "status", "started (UTC)", "rows", "duration", "data max", "error")
    body = [
        (
            str(r["run_id"]),
            r["project"],
            r["load_type"],
            r["status"] + (f" ({r['purpose']})" if r["purpose"] else ""),
            _when(r["start_execution_time"]),
            f"{r['number_of_records']:,}" if r["number_of_records"] is not None else "-",
            f"{r['duration_seconds']:.1f} s" if r["duration_seconds"] is not None else "-",
            r["data_max_date"] or "-",
            _truncate(r["error_message"]),
        )
        for r in rows
    ]
    return settings.masker(f"runs in {where}, newest first\n" + _table(header, body))


def status_text(settings: Settings, project: str | None) -> str:
    """For each project (or ``project``): last success and failure, locks, schedule and next runs,
    upstream projects, the latest backfill, and each table's watermark and last load."""
    names = [project] if project else project_names(settings)
    if not names:
        return f"no projects in {settings.paths.projects}"
    blocks = []
    for name in names:
        try:
            config = load_project_config(name, settings)
        except ConfigError as exc:
            blocks.append(f"{name}  (invalid: {exc})")
            continue
        blocks.append(_project_status(settings, config))
    return settings.masker("\n\n".join(blocks))


def _project_status(settings: Settings, config: ProjectConfig) -> str:
    name = config.name
    lines = [name]
    with _warehouse(settings, config) as (conn, where):
        lines.append(f"  warehouse     {where}")
        if conn is None:
            lines.append("  runs          none yet (the audit tables do not exist)")
        else:
            lines += _runs_lines(conn, config)
        lines += _lock_lines(settings, name, conn, config)
        lines += _schedule_lines(config)
        if conn is not None:
            lines += _backfill_lines(conn, name)
            lines += _table_lines(conn, config)
    return "\n".join(lines)


def _runs_lines(conn: Connection, config: ProjectConfig) -> list[str]:
    lines = []
    for label, status in (("last success", audit.SUCCESS), ("last failure", audit.FAILED)):
        row = (
            conn.execute(
                select(etl_runs)
                .where(etl_runs.c.project == config.name, etl_runs.c.status == status)
                .order_by(etl_runs.c.run_id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        if row is None:
            lines.append(f"  {label:<13} none")
            continue
        said = f"run {row['run_id']} at {_when(row['end_execution_time'] or row['start_execution_time'])}"
        if status == audit.SUCCESS:
            said += f", {row['number_of_records'] or 0:,} rows, data up to {row['data_max_date'] or '-'}"
        else:
            said += f": {_truncate(row['error_message'])}"
        lines.append(f"  {label:<13} {said}")
    now = utc_now()
    for upstream in config.depends_on:
        problem = not_ready(conn, upstream, now)
        limit = f" (max_age {age_text(upstream.max_age)})" if upstream.max_age is not None else ""
        lines.append(f"  depends on    {upstream.project}{limit}: " + (f"NOT READY: {problem}" if problem else "ready"))
    return lines


def _lock_lines(settings: Settings, name: str, conn: Connection | None, config: ProjectConfig) -> list[str]:
    """The run lock (in a PostgreSQL warehouse: its advisory locks, of the project and of each table; else
    the lock file) and the backfill's lock file, when held."""
    if conn is not None and conn.dialect.name == "postgresql":
        from script_factory import warehouse_lock

        held_by = warehouse_lock.holder(conn, name)
        lines = [f"  {'lock':<13} " + ("free" if held_by is None else f"HELD by {held_by}") + " (warehouse)"]
        for target in dict.fromkeys(str(t.target) for t in config.tables):
            if (table_holder := warehouse_lock.holder(conn, name, target)) is not None:
                lines.append(f"  {'table lock':<13} {target}: HELD by {table_holder}")
    else:
        held = lock.holder(settings.paths.locks, name)
        lines = [f"  {'lock':<13} " + ("free" if held is None else "HELD" + _holder(held))]
    backfill = lock.holder(settings.paths.locks, f"{name}.backfill")
    if backfill is not None:
        lines.append(f"  {'backfill lock':<13} HELD{_holder(backfill)}")
    return lines


def _holder(held: dict[str, Any]) -> str:
    if not held:
        return ""
    return f" by pid {held.get('pid')} on {held.get('host')} since {held.get('started')}"


def _schedule_lines(config: ProjectConfig) -> list[str]:
    if not config.schedule:
        return ["  schedule      none"]
    from croniter import croniter

    now = datetime.now().astimezone()
    cron = croniter(config.schedule, now)
    upcoming = [cron.get_next(datetime).strftime("%Y-%m-%d %H:%M") for _ in range(NEXT_RUNS)]
    return [
        f"  schedule      {config.schedule}; next runs {', '.join(upcoming)} ({now.strftime('%Z') or 'local time'})"
    ]


def _backfill_lines(conn: Connection, name: str) -> list[str]:
    """The latest backfill of the project: how many windows are done, failed and left."""
    latest = conn.execute(
        select(etl_backfill_chunks.c.backfill_id)
        .where(etl_backfill_chunks.c.project == name)
        .order_by(etl_backfill_chunks.c.started_at.desc().nulls_last(), etl_backfill_chunks.c.chunk_id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if latest is None:
        return []
    counts: dict[str, int] = dict(
        conn.execute(
            select(etl_backfill_chunks.c.status, func.count())
            .where(etl_backfill_chunks.c.backfill_id == latest)
            .group_by(etl_backfill_chunks.c.status)
        ).all()
    )
    done, failed = counts.pop("success", 0), counts.pop("failed", 0)
    return [f"  backfill      {latest}: {done} done, {failed} failed, {sum(counts.values())} left"]


def _table_lines(conn: Connection, config: ProjectConfig) -> list[str]:
    states = {
        r["target_table"]: r
        for r in conn.execute(select(etl_table_state).where(etl_table_state.c.project == config.name)).mappings()
    }
    names = list(dict.fromkeys([*(str(t.target) for t in config.tables if t.source.pattern is None), *states]))
    if not names:
        return []
    body = []
    for table in names:
        state = states.get(table)
        body.append(
            (
                table,
                (state["watermark"] if state else None) or "-",
                _last_load(conn, config.name, table, audit.SUCCESS),
                _last_load(conn, config.name, table, audit.FAILED),
            )
        )
    rendered = _table(("table", "watermark", "last success", "last failure"), body)
    return ["  tables", *("    " + line for line in rendered.splitlines())]


def _last_load(conn: Connection, project: str, table: str, status: str) -> str:
    row = conn.execute(
        select(etl_task_runs.c.run_id, etl_task_runs.c.end_time, etl_task_runs.c.start_time)
        .where(
            etl_task_runs.c.project == project,
            etl_task_runs.c.target_table == table,
            etl_task_runs.c.task_kind == "load",
            etl_task_runs.c.status == status,
        )
        .order_by(etl_task_runs.c.task_run_id.desc())
        .limit(1)
    ).first()
    return "-" if row is None else f"{_when(row[1] or row[2])} (run {row[0]})"


# -- the warehouse ----------------------------------------------------------------------------------


@contextmanager
def _warehouse(settings: Settings, config: ProjectConfig | None) -> Iterator[tuple[Connection | None, str]]:
    """A read connection to the warehouse of ``config`` (else the default one) and its masked name; the
    connection is None when the audit tables do not exist yet."""
    name = config.warehouse if config else WAREHOUSE_CONNECTION
    url = settings.connection_url(name)
    if url is None and config is not None and (spec := config.connections.get(name)) and spec.default_url:
        url = Secret(spec.default_url)
    url = url or Secret(DEFAULT_WAREHOUSE_URL)
    connections = Connections({name: url}, settings.paths.home, settings.variables, config.name if config else "-")
    try:
        warehouse = connections.sql_connector(name)
        where = settings.masker(warehouse.safe_url)
        with warehouse.translate_errors("read the audit tables"), warehouse.read_connection() as conn:
            yield (conn if inspect(conn).has_table(etl_runs.name) else None), where
    finally:
        connections.close()


# -- rendering ----------------------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    moment = audit.as_utc(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def _truncate(text: str | None) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= ERROR_WIDTH else line[: ERROR_WIDTH - 3] + "..."


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    return "\n".join(lines)
