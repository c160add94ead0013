"""The load step: stream one table from its source into its target, and publish it with its state.

For a table in the warehouse, everything that belongs to the load commits in its one transaction:
the rows, the checks on the table (gates: an ``error`` failure rolls the load back), the table's new
watermark (``etl_table_state``) and its ``etl_task_runs`` record. A kill at any point leaves the table
either as it was, with its old watermark, or loaded, with its new one.

A table in another target (Snowflake, BigQuery) commits there; its state is written in the warehouse
right after. Should the run die in between, the next run loads the same window again, so such a
table's incremental ``append`` is applied as ``delete_insert`` (idempotent by window).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from connectors.base import ROWS, Aggregate, Connector, LoadStats, ReadRequest
from script_factory import reconcile
from script_factory.config import CheckSpec, Strategy, TableSpec
from script_factory.context import RunContext
from script_factory.load_strategies import (
    LoadPlan,
    describe,
    effective_strategy,
    load,
    operations,
    reads_window,
    written_rows,
)
from script_factory.steps.checks import Finding, evaluate_checks, settle
from script_factory.target_shape import TargetShape, log_shape, only_columns, record_changes, shape_target
from script_factory.task import StepResult
from script_factory.transforms import Pipeline, transform_stream, transformed_columns
from script_factory.window import Window, next_watermark
from utilities.dates import encode_cursor, utc_now
from utilities.errors import EtlError
from utilities.progress import Progress

if TYPE_CHECKING:
    from connectors.columns import SourceColumn
    from connectors.target import LoadSession


def load_table(
    ctx: RunContext,
    *,
    table: TableSpec,
    sql: str | None,
    checks: tuple[CheckSpec, ...] = (),
    custom_sql: Mapping[str, str] | None = None,
    pipeline: Pipeline | None = None,
) -> StepResult:
    """Read ``table``'s source in its window, apply it to the target with its strategy, and publish
    it with its checks and its state (see the module docstring)."""
    window = ctx.window_for(str(table.target))
    strategy = _strategy(ctx, table, window)
    source = ctx.connector(table.source.connection)
    target = ctx.connector(_target_name(ctx, table))
    ctx.logger.info(
        "load %s <- %s (%s): strategy %s, window %s",
        table.target,
        table.source.connection,
        source.kind,
        strategy.value,
        window.describe(),
    )
    in_flight = pipeline is not None and pipeline.spec.in_flight
    request = read_request(ctx, table, sql, window, strategy, accept=frozenset({ROWS}) if in_flight else target.accepts)
    shape = shape_target(ctx, table, request, source, target, _target_name(ctx, table), _transformed(table))
    log_shape(ctx, shape)
    select_at_source = shape.loaded is not None and source.capabilities.sql and not in_flight
    if select_at_source:
        request = replace(request, columns=shape.loaded or ())  # the source selects them (pass-through stays)
    plan = load_plan(table, strategy, window, shape.ddl)
    figures = source_figures(ctx, table, request, source) if table.precheck or table.reconcile else {}
    if table.precheck and figures.get("count") == 0:
        ctx.logger.info("load %s: precheck found no row in the window; nothing is read or written", table.target)
        return StepResult(message="no new data (precheck: 0 rows in the window)", strategy=strategy.value, no_data=True)
    progress = Progress(f"load {table.target}", ctx.progress_interval, total=figures.get("count"))
    summary = ""

    def before_commit(session: LoadSession, stats: LoadStats) -> None:
        nonlocal summary
        conn = session.sql_connection()
        reconciled = _reconcile(ctx, table, plan, session, stats, figures) if table.reconcile else []
        results = evaluate_checks(ctx, conn, checks, custom_sql or {}) if checks else []
        if results or reconciled:
            summary = settle(ctx, conn, results, reconciled)
        _save_state(ctx, conn, table, window, strategy, stats)
        record_changes(conn, ctx, _target_name(ctx, table), shape)
        if table.profile and stats.rows:
            _profile(ctx, conn, session, table, plan, stats)

    in_warehouse = _target_name(ctx, table) == ctx.project.warehouse
    with source.read(request) as stream:
        if in_flight:  # rows only (never raw COPY bytes): each chunk is changed on its way
            assert pipeline is not None
            stream = transform_stream(stream, pipeline, str(table.target), ctx.connector)
        if shape.loaded is not None and not select_at_source:  # on_schema_change: ignore
            stream = only_columns(stream, shape.loaded)
        stats = load(target, stream, plan, progress, before_commit if in_warehouse else None)
    if not in_warehouse:
        warehouse = ctx.warehouse
        with warehouse.translate_errors(f"record the state of {table.target}"), warehouse.transaction() as conn:
            _save_state(ctx, conn, table, window, strategy, stats)
            record_changes(conn, ctx, _target_name(ctx, table), shape)
    rate = stats.rows / progress.elapsed if progress.elapsed > 0 else 0.0
    message = f"{stats.rows:,} rows, {rate:,.0f} rows/s" + ("" if stats.rows else " (no new data)")
    return StepResult(
        rows=stats.rows,
        data_min=stats.data_min,
        data_max=stats.data_max,
        message=message + (f"; {summary}" if summary else ""),
        strategy=strategy.value,
        source_rows=_source_count(table, figures, stats),
        no_data=not stats.rows,
    )


def source_figures(ctx: RunContext, table: TableSpec, request: ReadRequest, source: Connector) -> dict[str, Any]:
    """The source's figures of the window, in one bound query: the count (precheck) and the
    reconciliation's sums and ranges. A source that cannot compute them (files, APIs) gives none: its
    count is then the number of rows read."""
    wanted = reconcile.aggregates(table.reconcile) if table.reconcile else []
    if table.precheck and not any(a.label == "count" for a in wanted):
        wanted = [Aggregate("count"), *wanted]
    if not source.capabilities.sql:
        return {}
    figures = source.aggregate(request, wanted)
    ctx.logger.info("load %s: the source's window holds %s", table.target, _shown(figures))
    return figures


def _reconcile(
    ctx: RunContext,
    table: TableSpec,
    plan: LoadPlan,
    session: LoadSession,
    stats: LoadStats,
    figures: dict[str, Any],
) -> list[Finding]:
    """The source's figures against the rows this load wrote (inside its transaction), as findings."""
    spec = table.reconcile
    assert spec is not None
    source = figures if figures else {"count": stats.rows}  # a source without SQL: the rows read
    wanted = [a for a in reconcile.aggregates(spec) if a.label in source]
    compared = reconcile.compare(spec, source, session.aggregates(wanted, written_rows(plan)))
    base = {"run_id": ctx.run_id, "project": ctx.project.name}
    rows = reconcile.dq_rows(base, str(table.target), spec, compared)
    failing = {f.label for f in reconcile.blocks(spec, compared)}
    for figure in compared:
        log = ctx.logger.info if figure.agrees else ctx.logger.error if figure.label in failing else ctx.logger.warning
        log("reconcile %s %s: source %s, target %s (%s)", table.target, figure.label, figure.source, figure.target,
            figure.difference)  # fmt: skip
    return [
        Finding(row, f"reconcile {table.target} {f.label} ({row['detail']})" if f.label in failing else None)
        for f, row in zip(compared, rows, strict=True)
    ]


def _profile(
    ctx: RunContext, conn: Any, session: LoadSession, table: TableSpec, plan: LoadPlan, stats: LoadStats
) -> None:
    """The profile of the rows this load wrote, recorded with them (script_factory/profiling.py). The
    rows' own table, where PostgreSQL estimates the distinct counts: the staging table when the load
    staged them, else the target of a ``replace`` (a direct ``append`` has none)."""
    from sqlalchemy import table as sql_table

    from script_factory.profiling import profile_load

    started = time.perf_counter()
    own = getattr(session, "stage", None)  # SqlLoadSession's staging table, once rows were staged
    if own is None and plan.strategy is Strategy.REPLACE:
        own = sql_table(table.target.name, schema=table.target.schema)
    rules = table.transforms.columns if table.transforms else ()
    protected = [rule.target for rule in rules if rule.protects]
    rows = profile_load(
        conn,
        session,
        written_rows(plan),
        table.target,
        ctx.run_id,
        ctx.project.name,
        rows_written=stats.rows,
        own_table=own,
        protected=protected,
    )
    ctx.logger.info("profile %s: %d columns in %.2f s", table.target, len(rows), time.perf_counter() - started)


def _source_count(table: TableSpec, figures: dict[str, Any], stats: LoadStats) -> int | None:
    if not table.reconcile:
        return None
    return int(figures["count"]) if "count" in figures else stats.rows


def _shown(figures: dict[str, Any]) -> str:
    return ", ".join(f"{label} {value}" for label, value in figures.items())


def _save_state(
    ctx: RunContext, conn: Any, table: TableSpec, window: Window, strategy: Strategy, stats: LoadStats
) -> None:
    """The table's new watermark and its task record, on the connection of the load's transaction."""
    from script_factory import audit  # SQLAlchemy's tables: imported when a run writes, not to assemble

    watermark = encode_cursor(next_watermark(window, stats.data_max)) if table.cursor else None
    values = {
        "watermark": watermark,
        "data_min_date": encode_cursor(stats.data_min),
        "data_max_date": encode_cursor(stats.data_max),
        "rows": stats.rows,
        "strategy": strategy.value,
    }
    audit.save_table_state(
        conn, ctx.project.name, str(table.target), {**values, "run_id": ctx.run_id, "task_run_id": ctx.task_run_id}
    )
    if ctx.task_run_id is not None:
        audit.finish_task(
            conn,
            ctx.task_run_id,
            {**values, "status": "success", "end_time": utc_now(), "message": "committed with its rows"},
        )


def preview_load(
    ctx: RunContext,
    *,
    table: TableSpec,
    sql: str | None,
    checks: tuple[CheckSpec, ...] = (),
    custom_sql: Mapping[str, str] | None = None,
    pipeline: Pipeline | None = None,
) -> str:
    """What :func:`load_table` would run, for ``--dry-run``."""
    window = ctx.window_for(str(table.target))
    source = ctx.connector(table.source.connection)
    target = ctx.connector(_target_name(ctx, table))
    strategy = _strategy(ctx, table, window)
    ops = operations(load_plan(table, strategy, window), target.capabilities)
    gates = f", gates: {', '.join(c.name for c in checks)}" if checks else ""
    request = read_request(ctx, table, sql, window, strategy)
    try:
        shown = table_shape(ctx, table, sql).describe()
    except EtlError as exc:  # a dry run reports what the run would stop on
        shown = f"target: not compared with the source: {exc}"
    return (
        f"strategy: {strategy.value} ({describe(ops)}{gates}, in one transaction)\nwindow: {window.describe()}\n"
        f"{source.describe_read(request)}" + (f"\n{shown}" if shown else "")
    )


def table_shape(ctx: RunContext, table: TableSpec, sql: str | None) -> TargetShape:
    """What a load of ``table`` would do to its target's shape (``--dry-run``, ``--check``)."""
    window = ctx.window_for(str(table.target))
    target = ctx.connector(_target_name(ctx, table))
    request = read_request(ctx, table, sql, window, _strategy(ctx, table, window), accept=target.accepts)
    source = ctx.connector(table.source.connection)
    existing = getattr(target, "existing_columns", None)
    if ctx.project.ddl and existing is not None and existing(table.target) is None:
        return TargetShape(
            note=f"{table.target} does not exist yet: the project's ddl: files run first and may create it "
            "(else the load creates it from the source)"
        )
    return shape_target(ctx, table, request, source, target, _target_name(ctx, table), _transformed(table))


def _transformed(table: TableSpec) -> Callable[[tuple[SourceColumn, ...]], tuple[SourceColumn, ...]] | None:
    """The table's transforms applied to the source's columns, or None when it has none."""
    spec = table.transforms
    if spec is None:
        return None
    return lambda columns: transformed_columns(spec, columns)


def load_plan(table: TableSpec, strategy: Strategy, window: Window, ddl: tuple[str, ...] = ()) -> LoadPlan:
    """How the rows are applied: the strategy on the window, with the table's dedupe if it has one,
    after the DDL that creates or evolves the table."""
    dedupe = table.transforms.dedupe if table.transforms else None
    keys = dedupe.keys if dedupe else ()
    return LoadPlan(table.target, strategy, table.keys, table.cursor, window, ddl=ddl, dedupe=keys)


def read_request(
    ctx: RunContext,
    table: TableSpec,
    sql: str | None,
    window: Window,
    strategy: Strategy,
    accept: frozenset[str] = frozenset({ROWS}),
) -> ReadRequest:
    """What the source reads: the window's rows, or every row when the strategy replaces the table."""
    source_name = table.transforms.source_name if table.transforms else str  # keys: and cursor: name target columns
    return ReadRequest(
        sql=sql,
        table=table.source.table,
        params=ctx.bind_values(window),
        cursor=source_name(table.cursor) if table.cursor else None,
        filtered=window.filtered and table.cursor is not None and reads_window(strategy),
        window_start=window.start,
        window_end=window.end,
        chunk_size=table.chunk_size or ctx.project.chunk_size,
        options=table.source.options,
        accept=accept,
        keys=tuple(source_name(k) for k in table.keys),
    )


def _target_name(ctx: RunContext, table: TableSpec) -> str:
    return table.target_connection or ctx.project.warehouse


def _strategy(ctx: RunContext, table: TableSpec, window: Window) -> Strategy:
    """The strategy this run applies; an incremental ``append`` outside the warehouse is made idempotent
    by window, as is one whose window may overlap rows already loaded."""
    if ctx.request.repair and table.cursor and window.filtered:
        return Strategy.DELETE_INSERT  # a repair replaces the window exactly, whatever the table's strategy
    outside = _target_name(ctx, table) != ctx.project.warehouse
    overlaps = ctx.request.start_date is not None or bool(ctx.project.lookback) or outside
    return effective_strategy(table.strategy, ctx.request.load_type, window, table.cursor, overlaps)
