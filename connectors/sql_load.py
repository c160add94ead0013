"""Loads into SQLAlchemy databases (PostgreSQL, SQLite, MySQL/MariaDB): the operations, run in one transaction.

The session runs each operation as it comes, on the transaction ``SqlConnector.open_load`` opened;
the transaction commits when the load's list is done and rolls back on any error. Identifiers are
quoted by the dialect and window values are bound. How rows get in is the dialect's business
(``copy_into``: COPY on PostgreSQL, executemany elsewhere); the staging table is a temporary table
shaped like the target's columns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from connectors.base import Aggregate, LoadStats, RowStream
from connectors.target import (
    STAGE,
    Bounds,
    CheckKeys,
    DedupeStage,
    DeleteByKeys,
    DeleteWindow,
    EmptyTable,
    InsertFromStage,
    KeyReport,
    LoadSession,
    LoadTarget,
    MergeFromStage,
    Operation,
    WriteRows,
    Written,
    match_columns,
    spelled,
)
from utilities.errors import FatalError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table

    from connectors.sql import SqlConnector
    from utilities.progress import Progress

logger = logging.getLogger(__name__)


class SqlLoadSession(LoadSession):
    """The operations of one load, on ``conn`` inside its open transaction."""

    def __init__(self, connector: SqlConnector, conn: Connection, target: LoadTarget) -> None:
        self.connector = connector
        self.conn = conn
        self.target = target
        self.table = connector.reflect(conn, target.table)
        names = {c.name: c.name for c in self.table.columns}
        self.columns = match_columns(target.columns, names, target, "add it to the warehouse DDL")
        self.stage: Table | None = None
        self._after_rows: Sequence[str] = ()  # statements owed once the rows are in (indexes to rebuild)

    def sql_connection(self) -> Connection:
        return self.conn

    def aggregates(self, aggregates: Sequence[Aggregate], written: Written) -> dict[str, Any]:
        from sqlalchemy import func, select

        table = self.table
        figures = [
            func.count() if a.column is None else getattr(func, a.func)(self._column(table, a.column))
            for a in aggregates
        ]
        query = select(*figures).select_from(table)
        if written.bounds is not None:
            query = query.where(*self._within(table, written.bounds))
        if written.keys:
            query = query.where(self._staged_key_exists(written.keys))
        row = self.conn.execute(query).one()
        return {a.label: value for a, value in zip(aggregates, row, strict=True)}

    # -- rows -------------------------------------------------------------------------------------

    def write_rows(self, stream: RowStream, op: WriteRows, progress: Progress) -> LoadStats:
        into = self._create_stage() if op.into == STAGE else self.table
        stats = self.connector.copy_into(self.conn, into, self.columns, stream, self.target.cursor, progress)
        if op.into != STAGE:
            self.rows_in()
        if op.into == STAGE:
            self.connector.analyze_stage(self.conn, into)  # the planner's row count for what follows
        if not stats.exact_range and self.target.cursor and stats.rows:
            self._read_range(into, op.read_back if op.into != STAGE else None, stats)
        return stats

    def _create_stage(self) -> Table:
        from sqlalchemy import Column, MetaData
        from sqlalchemy import Table as SqlTable

        self.stage = SqlTable(
            f"_etl_stage_{self.table.name}"[:63],
            MetaData(),
            *[Column(c, self.table.c[c].type) for c in self.columns],
            **self.connector.temp_table_options(),
        )
        self.stage.create(self.conn)
        return self.stage

    def _read_range(self, table: Table, bounds: Bounds | None, stats: LoadStats) -> None:
        """The cursor's min and max among the rows just written (the staging table, or the window)."""
        from sqlalchemy import func, select

        assert self.target.cursor is not None
        cursor = table.c[spelled(self.columns, self.target.cursor)]
        query = select(func.min(cursor), func.max(cursor)).select_from(table)
        if bounds is not None:
            query = query.where(*self._within(table, bounds))
        low, high = self.conn.execute(query).one()
        stats.widen(low, high)

    # -- keys -------------------------------------------------------------------------------------

    def key_report(self, op: CheckKeys) -> KeyReport:
        """Staged rows with a NULL key and the first three keys staged twice, in one statement and one
        pass over the stage: the groups of the stage that are duplicated or hold a NULL, duplicates first
        in key order, with the NULL rows summed over all groups (the stage is named once: MySQL cannot
        open one temporary table twice in a statement)."""
        from sqlalchemy import case, func, literal, or_, select

        stage = self._staged()
        keys = [stage.c[spelled(self.columns, k)] for k in op.keys]
        has_null = or_(*[k.is_(None) for k in keys])
        groups = (
            select(
                *keys,
                func.count().label("etl_rows"),
                case((has_null, literal(1)), else_=literal(0)).label("etl_has_null"),
            )
            .group_by(*keys)
            .having(or_(func.count() > 1, has_null))
            .subquery("etl_groups")
        )
        grouped = [groups.c[k.name] for k in keys]
        duplicated = case((groups.c.etl_rows > 1, literal(1)), else_=literal(0))
        ranked = select(
            *grouped,
            duplicated.label("etl_duplicated"),
            func.sum(case((groups.c.etl_has_null == 1, groups.c.etl_rows), else_=literal(0))).over().label("etl_nulls"),
            func.row_number().over(order_by=[duplicated.desc(), *grouped]).label("etl_rank"),
        ).subquery("etl_ranked")
        rows = self.conn.execute(select(ranked).where(ranked.c.etl_rank <= 3).order_by(ranked.c.etl_rank)).all()
        nulls = int(rows[0].etl_nulls or 0) if rows else 0
        duplicates = tuple(tuple(row[: len(keys)]) for row in rows if row.etl_duplicated == 1)
        return KeyReport(nulls, duplicates)

    # -- changing the table ---------------------------------------------------------------------

    def apply(self, op: Operation) -> None:
        from sqlalchemy import delete, insert, select

        conn, table = self.conn, self.table
        if isinstance(op, EmptyTable):
            self._after_rows = self.connector.empty_for_reload(conn, table)
        elif isinstance(op, DeleteWindow):
            deleted = conn.execute(delete(table).where(*self._within(table, op.bounds))).rowcount
            logger.info("%s: removed %s row(s) of the window before inserting it", self.target.table, deleted)
        elif isinstance(op, DeleteByKeys):
            self._index_stage(op.keys)  # else the delete compares every table row with every staged row
            conn.execute(table.delete().where(self._staged_key_exists(op.keys)))
        elif isinstance(op, DedupeStage):
            self._dedupe_stage(op)
        elif isinstance(op, InsertFromStage):
            stage = self._staged()
            conn.execute(insert(table).from_select(self.columns, select(*[stage.c[c] for c in self.columns])))
            self.rows_in()
        elif isinstance(op, MergeFromStage):
            if self.connector.has_merge_statement(conn):
                started = time.perf_counter()
                merged = self.connector.merge_from_stage(conn, table, self._staged(), self.columns, self._keys(op))
                logger.info(
                    "merge into %s: %s row(s) inserted or updated in %.3f s",
                    self.target.table,
                    merged,
                    time.perf_counter() - started,
                )
            else:
                self.apply(DeleteByKeys(op.keys))
                self.apply(InsertFromStage())
        else:
            raise FatalError(f"load into {self.target.table}: {type(op).__name__} cannot be applied here")

    def rows_in(self) -> None:
        """Run what the table is owed now that its rows are in: the indexes ``EmptyTable`` dropped are
        built again, each by one sort of the new rows (the load fails, and rolls back, if a unique one
        does not hold). Called again before the transaction commits, it does nothing."""
        owed, self._after_rows = self._after_rows, ()
        if not owed:
            return
        started = time.perf_counter()
        for statement in owed:
            self.conn.exec_driver_sql(statement)
        logger.info(
            "%s: %d index(es) built after the rows were written, in %.2f s",
            self.target.table,
            len(owed),
            time.perf_counter() - started,
        )

    def _dedupe_stage(self, op: DedupeStage) -> None:
        """Delete the staged rows older than the latest of their key: the latest cursor per key goes into a
        second temporary table first (MySQL cannot name one temporary table twice in a statement)."""
        from sqlalchemy import Column, Index, MetaData, and_, delete, exists, func, insert, or_, select
        from sqlalchemy import Table as SqlTable

        stage = self._staged()
        keys = [stage.c[spelled(self.columns, k)] for k in op.keys]
        cursor = stage.c[spelled(self.columns, op.cursor)]
        latest = SqlTable(
            f"_etl_latest_{self.table.name}"[:63],
            MetaData(),
            *[Column(k.name, k.type) for k in keys],
            Column("etl_latest", cursor.type),
            **self.connector.temp_table_options(),
        )
        latest.create(self.conn)
        self.conn.execute(
            insert(latest).from_select(
                [*[k.name for k in keys], "etl_latest"], select(*keys, func.max(cursor)).group_by(*keys)
            )
        )
        Index(f"{latest.name}_keys"[:63], *[latest.c[k.name] for k in keys]).create(self.conn)
        older = or_(cursor < latest.c.etl_latest, and_(cursor.is_(None), latest.c.etl_latest.is_not(None)))
        same_key = and_(*[latest.c[k.name] == k for k in keys])
        removed = self.conn.execute(
            delete(stage).where(exists(select(1).select_from(latest).where(same_key, older)))
        ).rowcount
        logger.info(
            "%s: dedupe removed %s staged row(s) older than the latest of their key", self.target.table, removed
        )

    def _index_stage(self, keys: tuple[str, ...]) -> None:
        from sqlalchemy import Index

        stage = self._staged()
        Index(f"{stage.name}_keys"[:63], *[stage.c[spelled(self.columns, k)] for k in keys]).create(self.conn)

    def _staged(self) -> Table:
        if self.stage is None:
            raise FatalError(f"load into {self.target.table}: an operation needs staged rows, but none were staged")
        return self.stage

    def _keys(self, op: DeleteByKeys | MergeFromStage) -> list[str]:
        return [spelled(self.columns, k) for k in op.keys]

    def _staged_key_exists(self, keys: tuple[str, ...]) -> Any:
        from sqlalchemy import and_, exists, select

        stage = self._staged()
        match = and_(*[stage.c[k] == self.table.c[k] for k in (spelled(self.columns, k) for k in keys)])
        return exists(select(1).select_from(stage).where(match))

    def _column(self, table: Table, name: str) -> Any:
        column = next((c for c in table.columns if c.name.lower() == name.lower()), None)
        if column is None:
            raise FatalError(f"load into {self.target.table}: the table has no column {name!r} (named in project.yml)")
        return column

    def _within(self, table: Table, bounds: Bounds) -> list[Any]:
        cursor = self._column(table, bounds.cursor)
        clause = [cursor > bounds.start]
        if bounds.end is not None:
            clause.append(cursor <= bounds.end)
        return clause
