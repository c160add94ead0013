"""The audit trail in the warehouse: ``etl_runs``, ``etl_task_runs``, ``etl_table_state``,
``etl_dq_results``, ``etl_migrations``, ``etl_schema_changes``, ``etl_backfill_chunks``, ``etl_profiles``,
``etl_notifications``.

The audit row is the source of truth: it is inserted as ``running`` before any task and closed as
``success`` or ``failed`` at the end. A table's incremental watermark lives in ``etl_table_state``,
written *in the same transaction as the table's rows* (for a table in the warehouse): a load that
committed keeps its watermark whatever happens to the rest of the run, and a load that did not commit
left the old one. Normally it is that load's ``data_max_date``, but a run with explicit dates (a
backfill of an old window) keeps the later watermark it started from (see script_factory/window.py).
Window and data dates are stored as ISO-8601 text, at full precision and with the source's UTC
offset when it had one (cast with ``::timestamptz`` in PostgreSQL); execution times are timestamps
in UTC.

Every function takes the caller's connection, inside the caller's transaction: the runner decides
which writes go together.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    insert,
    select,
    update,
)

from utilities.dates import CursorValue, decode_cursor, utc_now

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

logger = logging.getLogger(__name__)

RUNNING, SUCCESS, FAILED = "running", "success", "failed"
_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only

metadata = MetaData()

etl_runs = Table(
    "etl_runs",
    metadata,
    Column("run_id", _ID, primary_key=True, autoincrement=True),
    Column("project", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("load_type", String(1), nullable=False),
    Column("start_load_date", String(40)),
    Column("end_load_date", String(40)),
    Column("start_execution_time", DateTime(timezone=True), nullable=False),
    Column("end_execution_time", DateTime(timezone=True)),
    Column("duration_seconds", Float),
    Column("data_min_date", String(40)),
    Column("data_max_date", String(40)),
    Column("previous_max_date", String(40)),
    Column("number_of_records", BigInteger),
    Column("source_records", BigInteger),  # the reconciled tables' source counts, when a table reconciles
    Column("environment", String(50)),
    Column("script_version", String(100)),
    Column("target_database", String(200)),
    Column("target_table", Text),
    Column("error_message", Text),
    Column("log_file", Text),
    Column("output_files", Text),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("purpose", String(20)),  # why the run ran, when not a plain load: "repair" (--verify --repair)
    Column("orchestrator_run_id", String(250)),  # the scheduler's run id (Airflow's), --orchestrator-run-id
    Index("ix_etl_runs_project_run", "project", "run_id"),
)

etl_task_runs = Table(
    "etl_task_runs",
    metadata,
    Column("task_run_id", _ID, primary_key=True, autoincrement=True),
    Column("run_id", _ID, ForeignKey("etl_runs.run_id"), nullable=False),
    Column("project", String(100), nullable=False),
    Column("task_name", String(200), nullable=False),
    Column("task_kind", String(30), nullable=False),
    Column("target_table", String(200)),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("strategy", String(20)),
    Column("window_start", String(40)),
    Column("window_end", String(40)),
    Column("previous_max_date", String(40)),
    Column("data_min_date", String(40)),
    Column("data_max_date", String(40)),
    Column("watermark", String(40)),  # where the table's next incremental window starts
    Column("rows", BigInteger),
    Column("rows_per_second", Float),
    Column("start_time", DateTime(timezone=True), nullable=False),
    Column("end_time", DateTime(timezone=True)),
    Column("duration_seconds", Float),
    Column("message", Text),
    Column("error_message", Text),
    Index("ix_etl_task_runs_watermark", "project", "target_table", "run_id"),
)

etl_dq_results = Table(
    "etl_dq_results",
    metadata,
    Column("result_id", _ID, primary_key=True, autoincrement=True),
    Column("run_id", _ID, ForeignKey("etl_runs.run_id"), nullable=False),
    Column("project", String(100), nullable=False),
    Column("check_name", String(200), nullable=False),
    Column("check_kind", String(30), nullable=False),
    Column("table_name", String(200)),
    Column("severity", String(10), nullable=False),
    Column("status", String(10), nullable=False),  # pass | fail
    Column("failing_rows", BigInteger),
    Column("detail", Text),
    Column("source_value", Text),  # reconciliation: the source's figure, the target's, and the difference
    Column("target_value", Text),
    Column("difference", Text),
    Column("checked_at", DateTime(timezone=True), nullable=False),
)

etl_table_state = Table(
    "etl_table_state",
    metadata,
    Column("project", String(100), primary_key=True),
    Column("target_table", String(200), primary_key=True),
    Column("watermark", String(40)),  # where the table's next incremental window starts
    Column("data_min_date", String(40)),
    Column("data_max_date", String(40)),
    Column("rows", BigInteger),
    Column("strategy", String(20)),
    Column("run_id", BigInteger),
    Column("task_run_id", BigInteger),
    Column("committed_at", DateTime(timezone=True), nullable=False),
)

etl_migrations = Table(
    "etl_migrations",
    metadata,
    Column("filename", String(300), primary_key=True),
    Column("checksum", String(64), nullable=False),
    Column("project", String(100), nullable=False),
    Column("run_id", BigInteger),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

etl_schema_changes = Table(
    "etl_schema_changes",
    metadata,
    Column("change_id", _ID, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger),
    Column("project", String(100), nullable=False),
    Column("connection", String(100), nullable=False),  # the target connection (the warehouse, or another)
    Column("target_table", String(200), nullable=False),
    Column("change", String(20), nullable=False),  # create | add_column | widen | missing_column | ignored_column
    Column("column_name", String(200)),
    Column("ddl", Text),  # the statement that ran (none for a column only reported)
    Column("applied_at", DateTime(timezone=True), nullable=False),
    Index("ix_etl_schema_changes_table", "connection", "target_table"),
)

# The ledger of backfills (script_factory/backfill_ledger.py): one row per window of a backfill, which is
# the project, the range, the window length and the load type (and --tables) of one command line.
etl_backfill_chunks = Table(
    "etl_backfill_chunks",
    metadata,
    Column("chunk_id", _ID, primary_key=True, autoincrement=True),
    Column("backfill_id", String(400), nullable=False),
    Column("project", String(100), nullable=False),
    Column("chunk_number", Integer, nullable=False),  # 1, 2, ... in window order
    Column("window_start", String(40), nullable=False),  # the window is start < cursor <= end
    Column("window_end", String(40), nullable=False),
    Column("load_type", String(1), nullable=False),
    Column("status", String(20), nullable=False),  # pending | running | success | failed | interrupted
    Column("rows", BigInteger),
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_id", BigInteger),  # the etl_runs row of the latest attempt
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("error_message", Text),  # masked
    Index("ix_etl_backfill_chunks_chunk", "backfill_id", "chunk_number", unique=True),
)

etl_profiles = Table(  # one row per column of a profiled load (script_factory/profiling.py)
    "etl_profiles",
    metadata,
    Column("profile_id", _ID, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger),
    Column("project", String(100), nullable=False),
    Column("table_name", String(200), nullable=False),
    Column("column_name", String(200), nullable=False),
    Column("data_type", String(100)),
    Column("rows", BigInteger),  # the rows the load wrote
    Column("null_count", BigInteger),
    Column("null_pct", Float),
    Column("distinct_count", BigInteger),
    Column("min_value", Text),
    Column("max_value", Text),
    Column("max_length", BigInteger),  # text columns only
    Column("profiled_at", DateTime(timezone=True), nullable=False),
    Index("ix_etl_profiles_table", "project", "table_name", "run_id"),
)

etl_notifications = Table(  # one row per e-mail sent about a run (script_factory/report.py)
    "etl_notifications",
    metadata,
    Column("notification_id", _ID, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger),
    Column("project", String(100), nullable=False),
    Column("kind", String(20), nullable=False),  # failure | warning | success | recovered
    Column("fingerprint", String(64)),  # of a failure's error: the same failure is mailed once per repeat_after
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Index("ix_etl_notifications_project", "project", "notification_id"),
)


def ensure_tables(engine: Engine) -> None:
    """Create the audit tables on first use (safe when two projects start at once), and add the
    columns a newer version introduced to tables an older version created. When they are all there
    already (every run but the first), that is one catalog query."""
    from sqlalchemy.exc import DBAPIError

    present = _present_columns(engine)
    if all(present.get(t.name, set()) >= {c.name for c in t.columns} for t in metadata.sorted_tables):
        return
    try:
        metadata.create_all(engine, checkfirst=True)
    except DBAPIError:
        # Another process created them between our check and our CREATE: check again, quietly.
        metadata.create_all(engine, checkfirst=True)
    _add_missing_columns(engine, _present_columns(engine))


def _present_columns(engine: Engine) -> dict[str, set[str]]:
    """The columns of each audit table that exists (one catalog query for all of them where the dialect can)."""
    from sqlalchemy import inspect

    names = [table.name for table in metadata.sorted_tables]
    with engine.connect() as conn:
        found = inspect(conn).get_multi_columns(filter_names=names)
    return {name: {c["name"] for c in columns} for (_, name), columns in found.items()}


def _add_missing_columns(engine: Engine, present: Mapping[str, set[str]]) -> None:
    from sqlalchemy import inspect
    from sqlalchemy.exc import DBAPIError

    missing = [
        (table, column)
        for table in metadata.sorted_tables
        for column in table.columns
        if column.name not in present.get(table.name, set())
    ]
    for table, column in missing:
        preparer = engine.dialect.identifier_preparer
        ddl = (
            f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {preparer.quote(column.name)} "
            f"{column.type.compile(dialect=engine.dialect)}"
        )
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(ddl)
            logger.info("audit table %s: added column %s", table.name, column.name)
        except DBAPIError:  # another run added it meanwhile
            with engine.connect() as conn:
                if column.name not in {c["name"] for c in inspect(conn).get_columns(table.name)}:
                    raise


def open_run(conn: Connection, project: str, values: Mapping[str, Any], orphans: bool | str = True) -> int:
    """Close as failed the rows of ``project`` a dead run left ``running`` (see :func:`_close_orphaned_rows`),
    then insert this run's row as ``running``; returns its run_id. Called under the project lock, after
    the watermarks are read (a ``running`` row never holds one). On PostgreSQL it is one statement.
    ``orphans``: a run that locks only some tables (the warehouse lock of a ``--tables`` run) closes
    only the rows of runs of exactly those tables (its ``target_table``), or none (False)."""
    if conn.dialect.name == "postgresql":
        run_id, closed = _open_run_in_one_statement(conn, project, values, orphans)
    else:
        closed = _close_orphaned_rows(conn, project, orphans)
        run_id = _new_id(conn.execute(insert(etl_runs).values(status=RUNNING, **values)))
    _say_closed(closed, project)
    return run_id


def _open_run_in_one_statement(
    conn: Connection, project: str, values: Mapping[str, Any], orphans: bool | str
) -> tuple[int, int]:
    """The two UPDATEs of :func:`_close_orphaned_rows` as data-modifying CTEs of the INSERT: all three see the
    snapshot taken before it, so the new row is not among the rows closed."""
    from sqlalchemy import func

    runs_update, tasks_update = _orphan_updates(project, orphans)
    runs = runs_update.returning(etl_runs.c.run_id).cte("etl_closed_runs")
    tasks = tasks_update.returning(etl_task_runs.c.task_run_id).cte("etl_closed_tasks")
    closed = select(func.count()).select_from(runs).scalar_subquery()
    statement = (
        insert(etl_runs).values(status=RUNNING, **values).returning(etl_runs.c.run_id, closed).add_cte(runs, tasks)
    )
    run_id, count = conn.execute(statement).one()
    return int(run_id), int(count)


def close_run(conn: Connection, run_id: int, values: Mapping[str, Any]) -> None:
    """Close the run's row, and any of its task rows still ``running`` (a signal can land between a
    task row's insert and the code that closes it) as failed with the run's error."""
    conn.execute(update(etl_runs).where(etl_runs.c.run_id == run_id).values(**values))
    if values.get("status") != RUNNING:
        conn.execute(
            update(etl_task_runs)
            .where(and_(etl_task_runs.c.run_id == run_id, etl_task_runs.c.status == RUNNING))
            .values(
                status=FAILED,
                end_time=values.get("end_execution_time") or utc_now(),
                error_message=values.get("error_message") or "the run ended before this task was closed",
            )
        )


def start_task(conn: Connection, values: Mapping[str, Any]) -> int:
    return _new_id(conn.execute(insert(etl_task_runs).values(status=RUNNING, **values)))


def finish_task(conn: Connection, task_run_id: int, values: Mapping[str, Any]) -> None:
    conn.execute(update(etl_task_runs).where(etl_task_runs.c.task_run_id == task_run_id).values(**values))


def save_table_state(conn: Connection, project: str, target_table: str, values: Mapping[str, Any]) -> None:
    """The table's state after a load (watermark, range, rows, run): one row per project and table."""
    key = and_(etl_table_state.c.project == project, etl_table_state.c.target_table == target_table)
    row = {**values, "committed_at": utc_now()}
    if not conn.execute(update(etl_table_state).where(key).values(**row)).rowcount:
        conn.execute(insert(etl_table_state).values(project=project, target_table=target_table, **row))


def _orphan_updates(project: str, orphans: bool | str = True) -> tuple[Any, Any]:
    """The UPDATEs that close the ``running`` rows of ``project`` (runs, then tasks); ``orphans`` as in
    :func:`open_run`."""
    from sqlalchemy import false

    message = "the run ended without closing its audit row (killed or crashed); its open load was rolled back"
    now = utc_now()
    which = and_(etl_runs.c.project == project, etl_runs.c.status == RUNNING)
    if orphans is False:
        which = false()
    elif isinstance(orphans, str):
        which = and_(which, etl_runs.c.target_table == orphans)
    runs = update(etl_runs).where(which).values(status=FAILED, error_message=message, end_execution_time=now)
    their_tasks = and_(etl_task_runs.c.project == project, etl_task_runs.c.status == RUNNING)
    if orphans is not True:  # the snapshot before the runs' UPDATE (one statement on PostgreSQL; tasks first elsewhere)
        their_tasks = and_(their_tasks, etl_task_runs.c.run_id.in_(select(etl_runs.c.run_id).where(which)))
    tasks = update(etl_task_runs).where(their_tasks).values(status=FAILED, error_message=message, end_time=now)
    return runs, tasks


def _close_orphaned_rows(conn: Connection, project: str, orphans: bool | str = True) -> int:
    """Mark ``running`` rows of ``project`` as failed: called while holding the project lock, so any
    such row belongs to a run that was killed or crashed. A task row that a load committed already
    says ``success`` (it was written in the load's transaction). Returns how many runs were closed."""
    runs, tasks = _orphan_updates(project, orphans)
    conn.execute(tasks)
    return int(conn.execute(runs).rowcount)


def _say_closed(closed: int, project: str) -> None:
    if closed:
        logger.warning("closed %d audit row(s) of project %s left 'running' by a run that died", closed, project)


def previous_max(conn: Connection, project: str, target_table: str) -> CursorValue | None:
    """The watermark of ``target_table``: its state row, else (history written before the state table
    existed) the ``watermark`` of its load in the latest successful run."""
    from sqlalchemy import func, or_

    state = conn.execute(
        select(etl_table_state.c.watermark).where(
            etl_table_state.c.project == project, etl_table_state.c.target_table == target_table
        )
    ).first()
    if state is not None:
        return decode_cursor(state[0])
    stored = func.coalesce(etl_task_runs.c.watermark, etl_task_runs.c.data_max_date)
    query = (
        select(stored)
        .join(etl_runs, etl_runs.c.run_id == etl_task_runs.c.run_id)
        .where(
            etl_runs.c.project == project,
            etl_runs.c.status == SUCCESS,
            etl_task_runs.c.target_table == target_table,
            etl_task_runs.c.status == SUCCESS,
            or_(etl_task_runs.c.watermark.is_not(None), etl_task_runs.c.data_max_date.is_not(None)),
        )
        .order_by(etl_task_runs.c.run_id.desc())
        .limit(1)
    )
    return decode_cursor(conn.execute(query).scalar_one_or_none())


def tables_exist(conn: Connection) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(conn).has_table("etl_runs"))


def record_dq_result(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(etl_dq_results).values(checked_at=utc_now(), **values))


def record_profile(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        now = utc_now()
        conn.execute(insert(etl_profiles), [{**row, "profiled_at": now} for row in rows])


def record_schema_change(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(etl_schema_changes).values(applied_at=utc_now(), **values))


def created_by_a_load(conn: Connection, connection: str, table: str, ledger_exists: bool = False) -> bool:
    """Whether a load created ``table`` in ``connection`` (its types then follow the source's);
    ``ledger_exists``: the caller knows the audit tables exist (one catalog query fewer)."""
    from sqlalchemy import inspect

    if not ledger_exists and not inspect(conn).has_table("etl_schema_changes"):
        return False
    query = select(etl_schema_changes.c.change_id).where(
        etl_schema_changes.c.connection == connection,
        etl_schema_changes.c.target_table == table,
        etl_schema_changes.c.change == "create",
    )
    return conn.execute(query.limit(1)).first() is not None


def applied_migration(conn: Connection, filename: str) -> Mapping[str, Any] | None:
    row = conn.execute(select(etl_migrations).where(etl_migrations.c.filename == filename)).mappings().first()
    return dict(row) if row else None


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite gives timestamps back naive; they were written in UTC."""
    if value is None or value.tzinfo is not None:
        return value

    return value.replace(tzinfo=UTC)


def _new_id(result: Any) -> int:
    """The primary key an INSERT just generated."""
    key = result.inserted_primary_key
    assert key is not None, "an INSERT of one row reports its new key"
    return int(key[0])
