"""The runner's audit reads and writes on the warehouse: translated, retried like a task, and never lost.

A write that still fails after the retries (the warehouse is away) is kept, in order, and done before
the next write that gets through, in the same transaction: when the warehouse answers again, every
row the run could not write while it was away is written, the closing of the run's row last.

Tables that load at once (``parallel: N``) share one writer: its writes take turns (they are short),
so the backlog is kept in order whatever thread wrote.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from script_factory.config import RetrySpec
from script_factory.context import Connections
from script_factory.retry import retrying
from utilities.errors import EtlError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

logger = logging.getLogger("script_factory.runner")
T = TypeVar("T")


class AuditWriter:
    def __init__(self, connections: Connections, warehouse: str, retries: RetrySpec) -> None:
        self.connections = connections
        self.warehouse = warehouse
        self.retries = retries
        self.backlog: list[tuple[str, Callable[[Connection], Any]]] = []
        self._turn = threading.RLock()

    def write(self, action: str, call: Callable[[Connection], T]) -> T:
        """``call(conn)`` in a transaction (after the backlog), retried on TransientError; the last
        error is raised. With ``publish: run`` the transaction is a savepoint of the run's."""

        def attempt() -> T:
            target = self.connections.sql_connector(self.warehouse)
            with target.translate_errors(action), target.transaction() as conn:
                for _, pending in self.backlog:
                    pending(conn)
                value = call(conn)
            self.backlog.clear()
            return value

        with self._turn:
            outcome = retrying(attempt, self.retries, f"audit: {action}")
        if outcome.error is not None:
            raise outcome.error
        return outcome.value  # type: ignore[return-value]

    def with_engine(self, action: str, call: Callable[[Engine], T]) -> T:
        """``call(engine)`` (creating tables), retried like :meth:`write`."""

        def attempt() -> T:
            target = self.connections.sql_connector(self.warehouse)
            with target.translate_errors(action):
                return call(target.engine)

        outcome = retrying(attempt, self.retries, f"audit: {action}")
        if outcome.error is not None:
            raise outcome.error
        return outcome.value  # type: ignore[return-value]

    def write_later(self, action: str, call: Callable[[Connection], Any]) -> bool:
        """Like :meth:`write`; if it still fails, the write joins the backlog (one line in the log) and
        False is returned. The run's outcome stays the tasks' own."""
        with self._turn:
            try:
                self.write(action, call)
                return True
            except EtlError as exc:
                logger.error("audit: could not %s (written when the warehouse answers again): %s", action, exc)
                self.backlog.append((action, call))
                return False
