"""The lock of a run: in the warehouse when it is PostgreSQL (so it holds across hosts), else the file lock.

A file lock (script_factory/lock.py) cannot stop two Airflow workers on two hosts. With a PostgreSQL
warehouse the run takes *session advisory locks* instead, on one connection it keeps open for the
run's lifetime: they die with the session, so a run killed with SIGKILL, or a host that vanishes
(the session asks the server for TCP keepalives), never leaves a lock behind, and no stale take-over
or heartbeat is needed.

What a run locks:

* a run of the whole project (no ``--tables``): the project's lock, exclusively;
* a run of some tables (``--tables a,b``, one Airflow task): the project's lock *shared*, and each of
  its tables' locks exclusively. Two tasks of different tables run at once; two runs of the same
  table exclude each other (LockedError, exit 3); a whole-project run excludes them all.

The keys are 64-bit hashes of ``etl:<project>`` and ``etl:<project>:<table>`` in the warehouse's
database; the lock domain is that one database.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from script_factory.lock import ProjectLock
from utilities.errors import LockedError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from connectors.sql import SqlConnector

logger = logging.getLogger(__name__)

APPLICATION = "etl-runner: "  # the lock session's application_name: "etl-runner: pid N on HOST"
KEEPALIVES = {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"}


class RunLock(Protocol):
    """What the runner needs of a lock: a context manager, and which ``running`` audit rows it covers."""

    #: None: the lock covers the whole project, so every ``running`` row of it belongs to a dead run;
    #: else the tables it covers (only a dead run of exactly those tables can be closed)
    scope: tuple[str, ...] | None

    def __enter__(self) -> RunLock: ...

    def __exit__(self, *exc: object) -> None: ...


class FileRunLock(ProjectLock):
    """The file lock, for a warehouse that is not PostgreSQL: one live run per project on this host."""

    scope: tuple[str, ...] | None = None

    def __enter__(self) -> FileRunLock:
        self.acquire()
        return self


def lock_key(project: str, table: str | None = None) -> int:
    """The advisory lock key (a signed 64-bit integer) of a project, or of one of its tables."""
    name = f"etl:{project}" if table is None else f"etl:{project}:{table}"
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class WarehouseLock:
    """Session advisory locks in a PostgreSQL warehouse (see the module docstring)."""

    def __init__(self, connector: SqlConnector, project: str, tables: Sequence[str] = ()) -> None:
        self.connector = connector
        self.project = project
        self.tables = tuple(sorted(dict.fromkeys(tables)))
        self.scope: tuple[str, ...] | None = self.tables or None
        self._conn: Connection | None = None

    def acquire(self) -> None:
        """Take every lock or none; LockedError (exit 3) naming the holder when one is held."""
        from sqlalchemy import text

        with self.connector.translate_errors("take the run's lock in the warehouse"):
            conn = self.connector.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                me = f"{APPLICATION}pid {os.getpid()} on {socket.gethostname()}"[:63]
                conn.execute(text("SELECT set_config('application_name', :v, false)"), {"v": me})
                for name, value in KEEPALIVES.items():
                    conn.execute(text("SELECT set_config(:n, :v, false)"), {"n": name, "v": value})
                project_key = lock_key(self.project)
                shared = bool(self.tables)
                function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
                wanted = [
                    (project_key, function, None),
                    *((lock_key(self.project, t), "pg_try_advisory_lock", t) for t in self.tables),
                ]
                for key, func, table in wanted:
                    if not conn.execute(text(f"SELECT {func}(:k)"), {"k": key}).scalar():
                        holder = _holder(conn, key)
                        conn.execute(text("SELECT pg_advisory_unlock_all()"))
                        raise LockedError(self._busy_message(table, holder))
            except BaseException:
                conn.close()
                self.connector.close()
                raise
        self._conn = conn
        logger.debug("warehouse lock of project %s taken (tables: %s)", self.project, ", ".join(self.tables) or "all")

    def _busy_message(self, table: str | None, holder: str | None) -> str:
        what = f"project {self.project}" if table is None else f"table {table} of project {self.project}"
        who = f" by {holder}" if holder else ""
        return (
            f"{what} is already running{who}; wait for it to finish (a session advisory lock in the "
            f"warehouse {self.connector.database_name})"
        )

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError

        try:
            conn.execute(text("SELECT pg_advisory_unlock_all()"))
        except DBAPIError as exc:  # the session is gone: its locks went with it
            logger.warning("warehouse lock of project %s: the session ended before the unlock (%s)", self.project, exc)
        finally:
            conn.close()
            self.connector.close()

    def __enter__(self) -> WarehouseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(conn: Connection, project: str, table: str | None = None) -> str | None:
    """Who holds the warehouse lock of ``project`` (or of its ``table``): "pid N on HOST since T", or None."""
    return _holder(conn, lock_key(project, table))


def _holder(conn: Connection, key: int) -> str | None:
    """Who holds advisory lock ``key`` in this database: "pid N on HOST since T", when it says."""
    from sqlalchemy import text

    row = conn.execute(
        text(
            "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid::bigint = :hi "
            "AND l.objid::bigint = :lo AND l.pid <> pg_backend_pid() "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1"
        ),
        {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
    ).first()
    if row is None:
        return None
    name, since = row
    who = name[len(APPLICATION) :] if name and name.startswith(APPLICATION) else f"a session ({name or 'unnamed'})"
    return f"{who} since {since.isoformat(timespec='seconds')}" if since else who


def run_lock(connector: SqlConnector, locks: Path, project: str, tables: Sequence[str] = ()) -> RunLock:
    """The lock of a run of ``project`` (``tables``: only those): in the warehouse when it is PostgreSQL,
    else the file lock under ``locks`` (one live run of the project on this host)."""
    if connector.sqlalchemy_url().get_backend_name() == "postgresql":
        return WarehouseLock(connector, project, tables)
    return FileRunLock(locks, project)
