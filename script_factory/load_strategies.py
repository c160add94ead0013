"""Load strategies: how a stream of rows is applied to a target table, atomically.

Every strategy runs inside one transaction on the target, so a failure at any point (kill -9
included) leaves the target as it was:

* ``append``        - rows are written straight into the target.
* ``replace``       - the target is emptied (TRUNCATE on PostgreSQL), then written.
* ``delete_insert`` - the target's rows inside the window are deleted, then the window is written.
* ``merge``         - rows go to a transaction-scoped staging table; target rows with the same keys
                      are deleted, and the staging rows inserted, in the same transaction.

Which strategy a run applies also depends on the load type (see :func:`effective_strategy`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from connectors.base import Chunk, LoadPlan, LoadStats, RowStream
from script_factory.config import Strategy
from script_factory.errors import FatalError
from script_factory.request import LoadType
from script_factory.window import Window
from utilities.progress import Progress

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table

    from connectors.sql import SqlConnector

logger = logging.getLogger(__name__)


def effective_strategy(
    declared: Strategy, load_type: LoadType, window: Window, cursor: str | None, explicit_window: bool
) -> Strategy:
    """The strategy a run applies.

    * A full load without dates replaces the table; with dates it replaces the window
      (``delete_insert``) when the table has a cursor.
    * An incremental ``append`` whose window may overlap rows already loaded (dates given on the
      command line, or a lookback) becomes ``delete_insert``, so re-running a window never
      duplicates rows.
    """
    if load_type is LoadType.FULL:
        return Strategy.DELETE_INSERT if window.filtered and cursor else Strategy.REPLACE
    if declared is Strategy.APPEND and explicit_window:
        return Strategy.DELETE_INSERT
    return declared


class _Tracker:
    """Passes chunks through while counting rows, tracking the cursor's range and reporting progress."""

    def __init__(self, stream: RowStream, cursor_index: int | None, progress: Progress) -> None:
        self.stream = stream
        self.cursor_index = cursor_index
        self.progress = progress
        self.stats = LoadStats()

    def __iter__(self) -> Iterator[Chunk]:
        index = self.cursor_index
        stats = self.stats
        for chunk in self.stream:
            if not chunk:
                continue
            if index is not None:
                values = [row[index] for row in chunk if row[index] is not None]
                if values:
                    low, high = min(values), max(values)
                    stats.data_min = low if stats.data_min is None or low < stats.data_min else stats.data_min
                    stats.data_max = high if stats.data_max is None or high > stats.data_max else stats.data_max
            stats.rows += len(chunk)
            self.progress.advance(len(chunk))
            yield chunk


def load(target: SqlConnector, stream: RowStream, plan: LoadPlan, progress: Progress) -> LoadStats:
    """Apply ``stream`` to ``plan.target`` with ``plan.strategy`` in one transaction; return what was written."""
    with target.translate_errors(f"load into {plan.target}"), target.engine.begin() as conn:
        table = target.reflect(conn, plan.target)
        columns = _target_columns(stream.columns, table, plan)
        cursor_index = _index_of(stream.columns, plan.cursor) if plan.cursor else None
        rows = _Tracker(stream, cursor_index, progress)
        if plan.strategy is Strategy.MERGE:
            _merge(target, conn, table, columns, plan.keys, rows)
        else:
            if plan.strategy is Strategy.REPLACE:
                target.truncate(conn, table)
            elif plan.strategy is Strategy.DELETE_INSERT:
                _delete_window(conn, table, plan)
            target.bulk_write(conn, table, columns, iter(rows))
        progress.finish()
        return rows.stats


def _target_columns(source_columns: Sequence[str], table: Table, plan: LoadPlan) -> list[str]:
    """The target's own spelling of each source column; FatalError if one has no target column."""
    by_lower = {c.name.lower(): c.name for c in table.columns}
    mapped = []
    for name in source_columns:
        target_name = by_lower.get(name.lower())
        if target_name is None:
            raise FatalError(
                f"load into {plan.target}: the source returns column {name!r}, which table {plan.target} "
                f"does not have; add it to the warehouse DDL or drop it from the query"
            )
        mapped.append(target_name)
    for required in (*plan.keys, *([plan.cursor] if plan.cursor else [])):
        if required.lower() not in {c.lower() for c in source_columns}:
            raise FatalError(
                f"load into {plan.target}: the source does not return column {required!r} named in project.yml"
            )
    return mapped


def _index_of(columns: Sequence[str], name: str) -> int:
    lowered = [c.lower() for c in columns]
    return lowered.index(name.lower())


def _delete_window(conn: Connection, table: Table, plan: LoadPlan) -> None:
    from sqlalchemy import delete

    assert plan.cursor is not None
    cursor = table.c[_index_of(table.columns.keys(), plan.cursor)]
    stmt = delete(table).where(cursor > plan.window.start)
    if plan.window.end is not None:
        stmt = stmt.where(cursor <= plan.window.end)
    deleted = conn.execute(stmt).rowcount
    logger.info("delete_insert %s: removed %s row(s) of the window before inserting it", plan.target, deleted)


def _merge(
    target: SqlConnector, conn: Connection, table: Table, columns: list[str], keys: Sequence[str], rows: _Tracker
) -> None:
    from sqlalchemy import Column, MetaData, Table, and_, exists, func, insert, or_, select

    names = {c.name.lower(): c.name for c in table.columns}
    staging = Table(
        f"_etl_stage_{table.name}"[:63],
        MetaData(),
        *[Column(c, table.c[c].type) for c in columns],
        **target.temp_table_options(),
    )
    staging.create(conn)
    target.bulk_write(conn, staging, columns, iter(rows))
    key_cols = [names[k.lower()] for k in keys]
    bad_keys = conn.execute(
        select(func.count()).select_from(staging).where(or_(*[staging.c[k].is_(None) for k in key_cols]))
    ).scalar_one()
    if bad_keys:
        raise FatalError(
            f"merge into {table.name}: {bad_keys} row(s) have a NULL key ({', '.join(keys)}); nothing was written"
        )
    duplicates = conn.execute(
        select(*[staging.c[k] for k in key_cols], func.count().label("n"))
        .group_by(*[staging.c[k] for k in key_cols])
        .having(func.count() > 1)
        .limit(3)
    ).all()
    if duplicates:
        examples = "; ".join(
            ", ".join(f"{k}={v!r}" for k, v in zip(keys, dup[:-1], strict=False)) for dup in duplicates
        )
        raise FatalError(
            f"merge into {table.name}: the source returns the same key more than once (e.g. {examples}); "
            f"make the query return one row per key; nothing was written"
        )
    match = and_(*[staging.c[k] == table.c[k] for k in key_cols])
    replaced = conn.execute(table.delete().where(exists(select(1).select_from(staging).where(match)))).rowcount
    inserted = conn.execute(insert(table).from_select(columns, select(*[staging.c[c] for c in columns]))).rowcount
    staging.drop(conn)
    logger.info("merge into %s: %s row(s) updated, %s inserted", table.name, replaced, max(inserted - replaced, 0))
