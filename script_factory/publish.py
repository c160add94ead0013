"""``publish: run``: every warehouse load of the run, its checks and the aggregations in one transaction.

The run's transaction opens before the first task that writes the warehouse and commits after the
last one; every write of the tasks in between (their loads, as savepoints, their checks, the table
states and even their audit rows) goes through it. Any failure, an ``error`` check or a kill
publishes nothing: readers see the previous state the whole time. The price: the locks the loads
take are held until the end, and it is all or nothing.

With ``publish: table`` (the default) there is no run transaction: each load commits on its own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from script_factory.task import Task

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from connectors.sql import SqlConnector

logger = logging.getLogger("script_factory.runner")


class RunTransaction:
    """Opens, commits or rolls back the run's transaction around the tasks that write the warehouse."""

    def __init__(self, tasks: tuple[Task, ...], publish: str, warehouse: SqlConnector) -> None:
        writers = [i for i, t in enumerate(tasks) if t.writes_warehouse] if publish == "run" else []
        self.span = (writers[0], writers[-1]) if writers else None
        self.warehouse = warehouse
        self._conn: Connection | None = None
        self._transaction: Any = None

    def inside(self, index: int) -> bool:
        return self.span is not None and self.span[0] <= index <= self.span[1]

    def before(self, index: int) -> None:
        if self.span is not None and index == self.span[0]:
            with self.warehouse.translate_errors("begin the run's transaction (publish: run)"):
                self._conn = self.warehouse.engine.connect()
                self._transaction = self._conn.begin()
            self.warehouse.pin(self._conn)
            logger.info("publish: run: the warehouse writes of tasks %d-%d go in one transaction", *self.span)

    def after(self, index: int) -> None:
        if self.span is not None and index == self.span[1] and self._conn is not None:
            try:
                with self.warehouse.translate_errors("publish the run (commit)"):
                    self._transaction.commit()
                logger.info("publish: run: committed; the run's loads are visible")
            finally:
                self._end()

    def abandon(self) -> bool:
        """Roll back an open run transaction; True if there was one (nothing of it is published)."""
        if self._conn is None:
            return False
        try:
            with self.warehouse.translate_errors("roll back the run's transaction"):
                self._transaction.rollback()
        except Exception as exc:  # noqa: BLE001 - the connection may be gone: the server rolled back already
            logger.warning("publish: run: rollback failed (%s); the server discards the transaction", exc)
        finally:
            self._end()
        logger.warning("publish: run: rolled back; nothing of this run is published")
        return True

    def _end(self) -> None:
        self.warehouse.pin(None)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
