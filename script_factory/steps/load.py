"""The load step: stream one table from its source connection into the warehouse."""

from __future__ import annotations

from connectors.base import ROWS, ReadRequest
from script_factory.config import Strategy, TableSpec
from script_factory.context import RunContext
from script_factory.load_strategies import LoadPlan, describe, effective_strategy, load, operations, reads_window
from script_factory.task import StepResult
from script_factory.window import Window
from utilities.progress import Progress


def load_table(ctx: RunContext, *, table: TableSpec, sql: str | None) -> StepResult:
    """Read ``table``'s source in its window and apply it to the target with its strategy."""
    window = ctx.window_for(str(table.target))
    strategy = _strategy(ctx, table, window)
    source = ctx.connector(table.source.connection)
    target = ctx.connector(table.target_connection or ctx.project.warehouse)
    ctx.logger.info(
        "load %s <- %s (%s): strategy %s, window %s",
        table.target,
        table.source.connection,
        source.kind,
        strategy.value,
        window.describe(),
    )
    progress = Progress(f"load {table.target}", ctx.progress_interval)
    request = read_request(ctx, table, sql, window, strategy, accept=target.accepts)
    with source.read(request) as stream:
        stats = load(target, stream, LoadPlan(table.target, strategy, table.keys, table.cursor, window), progress)
    rate = stats.rows / progress.elapsed if progress.elapsed > 0 else 0.0
    return StepResult(
        rows=stats.rows,
        data_min=stats.data_min,
        data_max=stats.data_max,
        message=f"{stats.rows:,} rows, {rate:,.0f} rows/s" + ("" if stats.rows else " (no new data)"),
        strategy=strategy.value,
    )


def preview_load(ctx: RunContext, *, table: TableSpec, sql: str | None) -> str:
    """What :func:`load_table` would run, for ``--dry-run``."""
    window = ctx.window_for(str(table.target))
    source = ctx.connector(table.source.connection)
    target = ctx.connector(table.target_connection or ctx.project.warehouse)
    strategy = _strategy(ctx, table, window)
    ops = operations(LoadPlan(table.target, strategy, table.keys, table.cursor, window), target.capabilities)
    return (
        f"strategy: {strategy.value} ({describe(ops)}, in one transaction)\nwindow: {window.describe()}\n"
        f"{source.describe_read(read_request(ctx, table, sql, window, strategy))}"
    )


def read_request(
    ctx: RunContext,
    table: TableSpec,
    sql: str | None,
    window: Window,
    strategy: Strategy,
    accept: frozenset[str] = frozenset({ROWS}),
) -> ReadRequest:
    """What the source reads: the window's rows, or every row when the strategy replaces the table."""
    return ReadRequest(
        sql=sql,
        table=table.source.table,
        params=ctx.bind_values(window),
        cursor=table.cursor,
        filtered=window.filtered and table.cursor is not None and reads_window(strategy),
        window_start=window.start,
        window_end=window.end,
        chunk_size=table.chunk_size or ctx.project.chunk_size,
        options=table.source.options,
        accept=accept,
        keys=table.keys,
    )


def _strategy(ctx: RunContext, table: TableSpec, window: Window) -> Strategy:
    explicit = ctx.request.start_date is not None or bool(ctx.project.lookback)
    return effective_strategy(table.strategy, ctx.request.load_type, window, table.cursor, explicit)
