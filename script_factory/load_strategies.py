"""Load strategies: how a stream of rows is applied to a target table, atomically.

Every strategy runs inside one transaction on the target, so a failure at any point (kill -9
included) leaves the target as it was:

* ``append``        - rows are written straight into the target.
* ``replace``       - the target is emptied (TRUNCATE on PostgreSQL), then written.
* ``delete_insert`` - rows go to a transaction-scoped temporary staging table; then the target's rows
                      inside the window are deleted and the staged rows inserted, in the same
                      transaction (the target is touched only once the source has been read whole).
* ``merge``         - rows go to the staging table, are checked for NULL and duplicate keys, then
                      applied in one ``MERGE`` (PostgreSQL 15+) or as delete + insert by key (SQLite,
                      MySQL), in the same transaction.

How the rows get in is the target's business (``copy_into``): Python rows, Arrow batches or raw
COPY bytes. When the writer cannot see the values (COPY pass-through), the cursor's range is read
back from what was written, inside the same transaction, so the watermark is always exact.

Which strategy a run applies also depends on the load type (see :func:`effective_strategy`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from connectors.base import LoadPlan, LoadStats, RowStream, match_columns
from script_factory.config import Strategy
from script_factory.request import LoadType
from script_factory.window import Window
from utilities.errors import FatalError
from utilities.progress import Progress

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table

    from connectors.sql import SqlConnector

logger = logging.getLogger(__name__)


def effective_strategy(
    declared: Strategy, load_type: LoadType, window: Window, cursor: str | None, explicit_window: bool
) -> Strategy:
    """The strategy a run applies.

    * A full load without dates replaces the table. With dates, a table with a cursor reloads that
      window: a ``merge`` table merges the window's rows again (a row may have moved out of the
      window since, so deleting by window would lose it), any other table replaces the window
      (``delete_insert``).
    * An incremental ``append`` whose window may overlap rows already loaded (dates given on the
      command line, or a lookback) becomes ``delete_insert``, so re-running a window never
      duplicates rows.
    """
    if load_type is LoadType.FULL:
        if not (window.filtered and cursor):
            return Strategy.REPLACE
        return Strategy.MERGE if declared is Strategy.MERGE else Strategy.DELETE_INSERT
    if declared is Strategy.APPEND and explicit_window:
        return Strategy.DELETE_INSERT
    return declared


def load(target: SqlConnector, stream: RowStream, plan: LoadPlan, progress: Progress) -> LoadStats:
    """Apply ``stream`` to ``plan.target`` with ``plan.strategy`` in one transaction; return what was written."""
    with target.translate_errors(f"load into {plan.target}"), target.engine.begin() as conn:
        table = target.reflect(conn, plan.target)
        columns = _target_columns(stream.columns, table, plan)
        if plan.strategy in (Strategy.MERGE, Strategy.DELETE_INSERT):
            staging, stats = _stage(target, conn, table, columns, stream, plan, progress)
            if plan.strategy is Strategy.MERGE:
                _apply_merge(target, conn, table, staging, columns, plan)
            else:
                _apply_delete_insert(conn, table, staging, columns, plan)
            staging.drop(conn)
        else:
            if plan.strategy is Strategy.REPLACE:
                target.truncate(conn, table)
            stats = target.copy_into(conn, table, columns, stream, plan.cursor, progress)
            if not stats.exact_range:
                _read_range(conn, table, plan, stats, in_window=plan.window.filtered)
        progress.finish()
        logger.info("load into %s: %s rows through %s", plan.target, f"{stats.rows:,}", stats.path)
        return stats


def _target_columns(source_columns: Sequence[str], table: Table, plan: LoadPlan) -> list[str]:
    """The target's own spelling of each source column; FatalError if one has no target column."""
    names = {c.name: c.name for c in table.columns}
    return match_columns(source_columns, names, plan, "add it to the warehouse DDL")


def _column(table: Table, name: str) -> Any:
    return next(c for c in table.columns if c.name.lower() == name.lower())


def _window_clause(table: Table, plan: LoadPlan) -> list[Any]:
    assert plan.cursor is not None
    cursor = _column(table, plan.cursor)
    clause = [cursor > plan.window.start]
    if plan.window.end is not None:
        clause.append(cursor <= plan.window.end)
    return clause


def _delete_window(conn: Connection, table: Table, plan: LoadPlan) -> None:
    from sqlalchemy import delete

    deleted = conn.execute(delete(table).where(*_window_clause(table, plan))).rowcount
    logger.info("delete_insert %s: removed %s row(s) of the window before inserting it", plan.target, deleted)


def _read_range(conn: Connection, table: Table, plan: LoadPlan, stats: LoadStats, *, in_window: bool) -> None:
    """The cursor's min and max among the rows just written (the whole table, or its window)."""
    from sqlalchemy import func, select

    if not plan.cursor or not stats.rows:
        return
    cursor = _column(table, plan.cursor)
    query = select(func.min(cursor), func.max(cursor)).select_from(table)
    if in_window:
        query = query.where(*_window_clause(table, plan))
    low, high = conn.execute(query).one()
    stats.widen(low, high)


def _stage(
    target: SqlConnector,
    conn: Connection,
    table: Table,
    columns: list[str],
    stream: RowStream,
    plan: LoadPlan,
    progress: Progress,
) -> tuple[Table, LoadStats]:
    """A transaction-scoped temporary table shaped like ``columns`` of ``table``, holding the stream."""
    from sqlalchemy import Column, MetaData
    from sqlalchemy import Table as SqlTable

    staging = SqlTable(
        f"_etl_stage_{table.name}"[:63],
        MetaData(),
        *[Column(c, table.c[c].type) for c in columns],
        **target.temp_table_options(),
    )
    staging.create(conn)
    stats = target.copy_into(conn, staging, columns, stream, plan.cursor, progress)
    if not stats.exact_range:
        _read_range(conn, staging, plan, stats, in_window=False)
    return staging, stats


def _apply_delete_insert(conn: Connection, table: Table, staging: Table, columns: list[str], plan: LoadPlan) -> None:
    from sqlalchemy import insert, select

    _delete_window(conn, table, plan)
    conn.execute(insert(table).from_select(columns, select(*[staging.c[c] for c in columns])))


def _apply_merge(
    target: SqlConnector, conn: Connection, table: Table, staging: Table, columns: list[str], plan: LoadPlan
) -> None:
    """Check the staged keys (no NULL, no duplicate), then merge the staged rows into ``table``."""
    from sqlalchemy import func, or_, select

    keys = [_column(table, k).name for k in plan.keys]
    null_keys = conn.execute(
        select(func.count()).select_from(staging).where(or_(*[staging.c[k].is_(None) for k in keys]))
    ).scalar_one()
    if null_keys:
        raise FatalError(
            f"merge into {table.name}: {null_keys} row(s) have a NULL key ({', '.join(plan.keys)}); nothing was written"
        )
    duplicates = conn.execute(
        select(*[staging.c[k] for k in keys], func.count().label("n"))
        .group_by(*[staging.c[k] for k in keys])
        .having(func.count() > 1)
        .limit(3)
    ).all()
    if duplicates:
        examples = "; ".join(
            ", ".join(f"{k}={v!r}" for k, v in zip(plan.keys, dup[:-1], strict=False)) for dup in duplicates
        )
        raise FatalError(
            f"merge into {table.name}: the source returns the same key more than once (e.g. {examples}); "
            f"make the query return one row per key; nothing was written"
        )
    merged = target.apply_merge(conn, table, staging, columns, keys)
    logger.info("merge into %s: %s row(s) inserted or updated", table.name, merged)
