"""MySQL and MariaDB: rows through PyMySQL's unbuffered cursor, or Arrow batches through connectorx
when the target takes Arrow (PostgreSQL), which reads at native speed in bounded memory."""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from connectors.base import ARROW, ArrowStream, Capabilities, ReadRequest, RowStream
from connectors.driver_errors import Verdict, credential_variables, fatal, first_line, transient, translating
from connectors.sql import SqlConnector

logger = logging.getLogger(__name__)

NEWDECIMAL, BIT = 246, 16  # MySQL protocol type codes
INTEGER_TYPES = {1, 2, 3, 8, 9}  # TINY, SHORT, LONG, LONGLONG, INT24
PIECE_ROWS = 100_000  # rows per key range on the Arrow path (the most connectorx may hold)
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_ .:+\-]*$")

# PyMySQL's errno (``exc.args[0]``) worth a retry; every other code is fatal. 2003 (cannot connect) is
# transient as libpq's refused connection is: a restarting server or a network blip heals, and a wrong
# host or port fails after the retries with the driver's words. 1040 (too many connections) is
# transient: slots free up as other clients finish. 1053 and 1927 are the server shutting down and a
# killed connection, PostgreSQL's 57P01. Statement time limits (1969 MariaDB, 3024 MySQL) and KILL
# QUERY (1317) are fatal, as PostgreSQL's 57014 is: the same statement would be stopped again.
TRANSIENT_ERRNOS = {
    1205: "a lock wait timed out (innodb_lock_wait_timeout); a retry usually succeeds",
    1213: "a deadlock with another transaction; a retry usually succeeds",
    2006: "the server has gone away (restart, wait_timeout); retry when it is back",
    2013: "the connection to the server was lost during the query",
    2003: "the server could not be reached; check that it is running and reachable (host, port)",
    1040: "the server has no free connection (max_connections); retry later",
    1053: "the server is shutting down; retry when it is back",
    1927: "the server killed the connection; retry when it is back",
}
FATAL_HINTS = {
    1045: "check the user and password ({credentials})",
    1044: "the user may not use this database; GRANT it or use another user",
    1049: "check the database name in ETL_CONN_{NAME}",
    1142: "the user lacks a privilege on a table of the query; GRANT it or use another user",
    1146: "check the table and column names in the query",
    1054: "check the table and column names in the query",
    1064: "check the query's SQL",
    1317: "the query was interrupted (KILL QUERY)",
    1969: "the query ran past the server's max_statement_time; raise it or make the query cheaper",
    3024: "the query ran past the server's max_execution_time; raise it or make the query cheaper",
}
# connectorx raises RuntimeError with the Rust mysql crate's text; see classify_connectorx.
_CX_SERVER_ERROR = re.compile(r"\bERROR (\d{4,5}) \([0-9A-Z]{5}\): ")
_CX_OS_ERROR = re.compile(r"\(os error (\d+)\)")
# Network failures by operating-system error number (POSIX, and Windows' WSAE* codes).
NETWORK_OS_ERRORS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EPIPE,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    10053,
    10054,
    10060,
    10061,
    10065,
}


def verdict_for(code: int, text: str, name: str = "NAME") -> Verdict:
    """The verdict for a MySQL server or client error number (see :data:`TRANSIENT_ERRNOS`)."""
    if code in TRANSIENT_ERRNOS:
        return transient(text, TRANSIENT_ERRNOS[code])
    hint = FATAL_HINTS.get(code, "")
    return fatal(text, hint.format(NAME=name.upper(), credentials=credential_variables(name)))


def classify(orig: BaseException, name: str = "NAME") -> Verdict | None:
    """The verdict for a PyMySQL error by its errno (``args[0]``), or None if it is not one."""
    import pymysql

    if not isinstance(orig, pymysql.err.MySQLError) or not orig.args or not isinstance(orig.args[0], int):
        return None
    code = orig.args[0]
    message = first_line(str(orig.args[1])) if len(orig.args) > 1 else type(orig).__name__
    return verdict_for(code, f"ERROR {code}: {message}" if code else message, name)


def classify_connectorx(exc: BaseException, name: str = "NAME") -> Verdict | None:
    """The verdict for a connectorx error, or None if it is not one.

    connectorx exposes no error number: its errors are RuntimeErrors carrying the text of the Rust
    mysql crate. The narrowest reliable rule reads the numbers in that text, never its words: a server
    error, which the crate always prints as "ERROR 1205 (HY000): ...", is judged by its number as
    PyMySQL's errno is; an operating-system error of a network failure ("... (os error 111)") is
    transient; anything else is fatal. A Rust panic (a value connectorx cannot convert) is fatal.
    """
    text = first_line(str(exc))
    if type(exc).__name__ == "PanicException":
        return fatal(text, "connectorx cannot convert a value of this query; cast the column in a query: file")
    if not isinstance(exc, RuntimeError | OSError | ValueError):
        return None
    server = _CX_SERVER_ERROR.search(text)
    if server:
        return verdict_for(int(server.group(1)), text, name)
    system = _CX_OS_ERROR.search(text)
    if system and int(system.group(1)) in NETWORK_OS_ERRORS:
        return transient(text, "the network connection to the server failed; check that it is running and reachable")
    return fatal(text)


class MysqlConnector(SqlConnector):
    """``mysql://user:password@host:3306/db`` or ``mariadb://...`` (driven by PyMySQL)."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=True, merge=True, streaming=True)
    kind: ClassVar[str] = "MySQL"
    driver: ClassVar[str | None] = "pymysql"

    def sqlalchemy_url(self) -> Any:
        url = super().sqlalchemy_url()
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        return url

    def engine_options(self) -> dict[str, Any]:
        timeout = int(self.variable("ETL_CONNECT_TIMEOUT", "15") or 15)
        return {**super().engine_options(), "connect_args": {"connect_timeout": timeout}}

    def server_version(self, conn: Any) -> str:
        version = conn.exec_driver_sql("SELECT VERSION()").scalar()
        return f"{'MariaDB' if 'mariadb' in str(version).lower() else 'MySQL'} {version}"

    def classify_driver_error(self, orig: BaseException) -> Verdict | None:
        return classify(orig, self.name)

    def read(self, request: ReadRequest) -> RowStream:
        if ARROW in request.accept:
            stream = self._arrow_stream(request)
            if stream is not None:
                return stream
        return super().read(request)

    # -- the Arrow path -------------------------------------------------------------------------

    def _arrow_stream(self, request: ReadRequest) -> ArrowStream | None:
        """connectorx's Arrow record batches, or None when this read must take the row path.

        connectorx takes no bind parameters, so the statement is rendered with SQLAlchemy's MySQL
        literal renderer, and only for values that cannot carry SQL: dates, datetimes, integers,
        decimals and plain tokens. Anything else, a BIT or DECIMAL cursor, duplicate column names,
        or a missing connectorx falls back to the PyMySQL row path (correct, slower). DECIMAL
        columns are read as their exact text (connectorx's decimal128(38, 10) would round wider
        scales and fails on some values), which PostgreSQL parses back exactly.

        connectorx reads ahead of its consumer without a bound, so when the target writes slower
        than MySQL reads, memory would grow with the table. The read is therefore split into
        ranges of an integer key (the table's first key, else an integer cursor) of about
        ``piece_rows`` rows each, read one after the other: memory is bounded by one range.
        """
        try:
            import connectorx  # noqa: F401
        except ImportError:
            logger.info("%s: connectorx is not installed; reading rows through PyMySQL", self.name)
            return None
        stmt, params = self.select_for(request)
        if not all(_renderable(v) for v in [*params.values(), request.window_start, request.window_end]):
            return None
        description = self._describe(stmt, params)
        if not _arrow_ready(description, request, self.name):
            return None
        sql = self._literal(_decimals_as_text(stmt, description))
        pieces = self._pieces(sql, _split_column(description, request))
        first_piece = next(pieces)
        first = self._open(first_piece[0], request.chunk_size)
        schema = first.schema
        return ArrowStream(list(schema.names), schema, self._batches(first, first_piece, pieces, request.chunk_size))

    def _describe(self, stmt: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        from sqlalchemy import TextClause, literal_column, select

        source = (
            stmt.columns().subquery("etl_describe") if isinstance(stmt, TextClause) else stmt.subquery("etl_describe")
        )
        probe: Any = select(literal_column("*")).select_from(source).limit(0)
        with self.translate_errors("describe the query"), self.read_connection() as conn:
            return list(conn.execute(probe, params).cursor.description)

    def _literal(self, stmt: Any) -> str:
        return str(stmt.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))

    def _pieces(self, sql: str, column: str | None) -> Iterator[tuple[str, _KeyRanges | None, int]]:
        """``sql`` as consecutive ranges of integer ``column`` (with the ranges' tracker and each
        range's width), or ``sql`` whole when there is no column to split on."""
        from sqlalchemy import column as col
        from sqlalchemy import func, literal_column, select, text

        if column is None:
            yield sql, None, 0
            return
        source = text(sql).columns(col(column)).subquery("etl_piece")
        key = source.c[column]
        with self.translate_errors("find the key range"), self.read_connection() as conn:
            low, high = conn.execute(select(func.min(key), func.max(key))).one()
        if low is None:
            yield sql, None, 0
            return
        ranges = _KeyRanges(int(low), int(high), PIECE_ROWS)
        while (bounds := ranges.next_range()) is not None:
            start, end = bounds
            yield (
                self._literal(select(literal_column("*")).select_from(source).where(key >= start, key < end)),
                ranges,
                end - start,
            )

    def _open(self, sql: str, batch_size: int) -> Any:
        import connectorx

        url = self.sqlalchemy_url().set(drivername="mysql", query={}).render_as_string(hide_password=False)
        with self._translate_connectorx("query"):
            return connectorx.read_sql(url, sql, return_type="arrow_stream", batch_size=batch_size)

    def _batches(
        self,
        first: Any,
        first_piece: tuple[str, _KeyRanges | None, int],
        pieces: Iterator[tuple[str, _KeyRanges | None, int]],
        batch_size: int,
    ) -> Iterator[Any]:
        """Every range's batches in order, one range at a time: connectorx reads ahead of a slow
        writer without a bound, so a range is the most it can hold."""
        current, (_, ranges, width) = first, first_piece
        while current is not None:
            rows = 0
            with self._translate_connectorx("read"):
                for batch in current:
                    rows += batch.num_rows
                    yield batch
            if ranges is not None:
                ranges.record(rows, width)
            following = next(pieces, None)
            current = self._open(following[0], batch_size) if following else None
            if following is not None:
                _, ranges, width = following

    def _translate_connectorx(self, action: str) -> AbstractContextManager[None]:
        return translating(self, action, lambda exc: classify_connectorx(exc, self.name))


def _arrow_ready(description: list[tuple[Any, ...]], request: ReadRequest, connection: str) -> bool:
    """False when a column needs the row path: BIT, a DECIMAL cursor, or two columns with one name."""
    names = [str(d[0]).lower() for d in description]
    if len(set(names)) != len(names):
        logger.info("%s: the query returns duplicate column names; reading rows through PyMySQL", connection)
        return False
    for name, type_code, *_ in description:
        if type_code == BIT or (type_code == NEWDECIMAL and request.cursor and name.lower() == request.cursor.lower()):
            logger.info("%s: column %s needs the row path; reading rows through PyMySQL", connection, name)
            return False
    return True


def _decimals_as_text(stmt: Any, description: list[tuple[Any, ...]]) -> Any:
    """``stmt`` with every DECIMAL column cast to CHAR (its exact text), other columns as they are."""
    from sqlalchemy import CHAR, TextClause, cast, column, select

    decimals = {str(d[0]) for d in description if d[1] == NEWDECIMAL}
    if not decimals:
        return stmt
    source = (stmt.columns() if isinstance(stmt, TextClause) else stmt).subquery("etl_src")
    names = [str(d[0]) for d in description]
    return select(*[cast(column(n), CHAR).label(n) if n in decimals else column(n) for n in names]).select_from(source)


def _split_column(description: list[tuple[Any, ...]], request: ReadRequest) -> str | None:
    """The integer column to read in ranges: the first key, else the cursor; None if neither is an integer."""
    types = {str(d[0]).lower(): (str(d[0]), d[1]) for d in description}
    for candidate in (*request.keys[:1], *([request.cursor] if request.cursor else [])):
        found = types.get(candidate.lower())
        if found and found[1] in INTEGER_TYPES:
            return found[0]
    return None


def _renderable(value: Any) -> bool:
    """Values safe to render as SQL literals: typed values and short plain tokens, never free text."""
    if value is None or isinstance(value, (datetime, date, Decimal)):
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and len(value) <= 64 and bool(_SAFE_TEXT.match(value))


class _KeyRanges:
    """Consecutive ``[start, end)`` ranges of an integer key from ``low`` to ``high``, each sized to
    about ``target`` rows from the density of the ranges read so far (the first ones start small)."""

    def __init__(self, low: int, high: int, target: int) -> None:
        self.start, self.high, self.target = low, high, target
        self.step = max(1, target // 16)
        self.rows = self.width = 0

    def next_range(self) -> tuple[int, int] | None:
        if self.start > self.high:
            return None
        if self.rows:
            self.step = max(1, min(self.step * 8, int(self.target * self.width / self.rows)))
        elif self.width:
            self.step *= 8
        start, self.start = self.start, self.start + self.step
        return start, self.start

    def record(self, rows: int, width: int) -> None:
        self.rows += rows
        self.width += width
