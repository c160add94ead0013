"""SQLite: the embedded default warehouse and a common operational source.

Relative paths in ``sqlite:///relative/file.db`` are resolved against the ETL home folder, so a
run finds the same file whatever the current directory. Transactions are real (``BEGIN IMMEDIATE``
for writers), so DDL and loads are atomic, and a killed run is rolled back by SQLite's journal.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import Capabilities, Chunk, ReadRequest, RowStream, TableName
from connectors.driver_errors import Verdict, fatal, first_line, transient
from connectors.sql import READONLY, MissingTableError, SqlConnector, dbapi_connection
from utilities.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Table

    from connectors.columns import SourceColumn

BUSY_TIMEOUT_MS = 60_000
# Primary result codes (``sqlite_errorcode & 0xFF``; the extended codes add detail in the upper bits).
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CANTOPEN = 5, 6, 14
# ``sqlite[+driver]:///file`` with a plain path: read without SQLAlchemy (a dry run may never import it)
_PLAIN_FILE_URL = re.compile(r"sqlite(?:\+\w+)?:///(?P<database>[^?#%@]*)(?:\?[^#%]*)?")

# Explicit adapters (the implicit ones are deprecated from Python 3.12): ISO text, space separator,
# the same text the sqlite3 module has always written, so stored values keep comparing correctly.
sqlite3.register_adapter(datetime, lambda v: v.isoformat(" "))
sqlite3.register_adapter(date, lambda v: v.isoformat())
sqlite3.register_adapter(time, lambda v: v.isoformat())
sqlite3.register_adapter(Decimal, str)


def classify(orig: BaseException) -> Verdict | None:
    """The verdict for a sqlite3 error by its result code (``sqlite_errorcode``, Python 3.11+): a
    database that is locked or busy (another connection writes) is transient; everything else is
    fatal. None when ``orig`` is not a sqlite3 error, or carries no code."""
    code = getattr(orig, "sqlite_errorcode", None) if isinstance(orig, sqlite3.Error) else None
    if code is None:
        return None
    text = first_line(str(orig))
    if code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED):
        return transient(text, f"another connection held the database lock for over {BUSY_TIMEOUT_MS // 1000} s")
    if code & 0xFF == SQLITE_CANTOPEN:
        return fatal(text, "check the file's path and that its folder is writable")
    return fatal(text)


class SqliteConnector(SqlConnector):
    """``sqlite:///metadata/warehouse.db`` (relative to the ETL home) or ``sqlite:////abs/path.db``."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=True, merge=True, direct_write=True)
    kind: ClassVar[str] = "SQLite"
    DROP_STAGE: ClassVar[str] = "DROP TABLE temp.{}"  # the temporary one, never a main table
    single_writer: ClassVar[bool] = True  # BEGIN IMMEDIATE takes the file's one write lock

    @property
    def path(self) -> Path | None:
        """The database file, or None for an in-memory database."""
        plain = _PLAIN_FILE_URL.fullmatch(self.url.reveal())
        database = plain["database"] if plain else super().sqlalchemy_url().database
        if not database or database == ":memory:":
            return None
        path = Path(database)
        return path if path.is_absolute() else self.home / path

    def sqlalchemy_url(self) -> Any:
        url = super().sqlalchemy_url()
        path = self.path
        return url.set(database=str(path)) if path is not None else url

    @property
    def database_name(self) -> str:
        path = self.path
        return path.name if path is not None else ":memory:"

    def engine_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000}}
        if self.path is not None:  # a file's pool (an in-memory database has one connection per thread)
            options["max_overflow"] = -1
        return options

    def on_engine(self, engine: Engine) -> None:
        from sqlalchemy import event

        path = self.path
        if path is not None and not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves: DDL is transactional too
            dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            dbapi_connection.execute("PRAGMA foreign_keys = ON")

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers take the write lock up front (no deadlock on lock upgrade); readers do not.
            readonly = conn.get_execution_options().get(READONLY)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    def require_file(self) -> Path:
        """The database file, which must exist (for sources: a typo must not create an empty file)."""
        path = self.path
        if path is None or not path.is_file():
            raise ConfigError(f"SQLite connection {self.name!r}: file {path} does not exist")
        return path

    def read(self, request: ReadRequest) -> RowStream:
        self.require_file()
        return super().read(request)

    def describe_table(
        self, conn: Connection, name: Any, convert: Callable[[Any], Any] | None = None
    ) -> list[tuple[str, Any, bool]]:
        """SQLite keeps each column's declared type as written: read it (``PRAGMA table_info``, which
        also gives a view's columns the declared types of the columns they select) and map it."""
        from connectors.columns import sqlite_declared

        quoted = conn.dialect.identifier_preparer.quote
        pragma = f"PRAGMA {quoted(name.schema) + '.' if name.schema else ''}table_info({quoted(name.name)})"
        rows = conn.exec_driver_sql(pragma).all()
        if not rows:
            raise MissingTableError(f"SQLite connection {self.name!r}: source table {name} does not exist")
        return [(row[1], sqlite_declared(row[2] or ""), not row[3]) for row in rows]

    def existing_columns(self, name: TableName) -> tuple[SourceColumn, ...] | None:
        """None when the database file does not exist yet (looking must not create it)."""
        path = self.path
        if path is not None and not path.is_file():
            return None
        return super().existing_columns(name)

    def describe_columns(self, request: ReadRequest) -> tuple[SourceColumn, ...]:
        self.require_file()  # a missing source file must not be created by looking at it
        return super().describe_columns(request)

    def widen_statement(self, table: str, column: str, kind: Any, dialect: Any) -> str | None:
        return None  # SQLite does not enforce a column's length or integer width: nothing to widen

    def server_version(self, conn: Connection) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    def classify_driver_error(self, orig: BaseException) -> Verdict | None:
        return classify(orig)

    def bulk_write(self, conn: Connection, table: Table, columns: Sequence[str], chunks: Iterator[Chunk]) -> None:
        """``executemany`` of a positional INSERT, values adapted by the sqlite3 module."""
        preparer = conn.dialect.identifier_preparer
        column_list = ", ".join(preparer.quote(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {preparer.format_table(table)} ({column_list}) VALUES ({marks})"
        cursor = dbapi_connection(conn).cursor()
        try:
            for chunk in chunks:
                if chunk:
                    cursor.executemany(sql, chunk)
        finally:
            cursor.close()
