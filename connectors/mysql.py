"""MySQL and MariaDB: rows through PyMySQL's unbuffered cursor, or Arrow batches through connectorx
when the target takes Arrow (PostgreSQL), which reads at native speed in bounded memory.

Values no date or time type elsewhere can hold stop the read with one line naming the column and a row:
zero dates (``0000-00-00``, ``2024-00-15``; ``source: {..., zero_dates: null}`` reads them as NULL) and
TIME beyond a day (MySQL's TIME spans -838:59:59..838:59:59, PostgreSQL's time 00:00..24:00). BIT(1)
arrives as a boolean, wider BIT(n) as an integer.
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from connectors.base import ARROW, ArrowStream, Capabilities, Chunk, ReadRequest, RowStream, TableName
from connectors.copy_writer import read_ahead
from connectors.driver_errors import Verdict, credential_variables, fatal, first_line, render, transient, translating
from connectors.sql import SqlConnector
from utilities.errors import ConfigError, FatalError
from utilities.memory import limit_malloc_arenas, prefer_system_arrow_pool
from utilities.sql_text import strip_comments

logger = logging.getLogger(__name__)

NEWDECIMAL, BIT, TIME = 246, 16, 11  # MySQL protocol type codes
UNSIGNED_FLAG = 32  # MySQL protocol column flag
MAX_ARROW_DECIMAL = 38  # digits of Arrow's decimal128, the widest pgpq encodes
DATE_TYPES = {7, 10, 12, 14}  # TIMESTAMP, DATE, DATETIME, NEWDATE
INTEGER_TYPES = {1, 2, 3, 8, 9}  # TINY, SHORT, LONG, LONGLONG, INT24
PIECE_ROWS = 50_000  # rows per key range on the Arrow path (the most connectorx may hold)
READ_AHEAD_BATCHES = 2  # Arrow batches read ahead by a second thread (connectorx fetches without the GIL)
ARROW_BATCH_ROWS = 5_000  # rows per connectorx batch at most (peak RSS: 1M rows of 11 columns read as
# 100,000-row ranges of 50,000-row batches held 32 MB, as 50,000-row ranges of 10,000-row batches 19 MB;
# 5,000-row batches took 3-8 MB less again, at the same speed)
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_ .:+\-]*$")
#: a column the Arrow read adds when a value must stop it ("<column index>:<value>"); never loaded
INVALID_FLAG = "etl__invalid_value"
ONE_DAY = timedelta(days=1)
SOURCE_OPTIONS = {"zero_dates": ("null", "error")}

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

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=True, merge=True, direct_write=True)
    kind: ClassVar[str] = "MySQL"
    DROP_STAGE: ClassVar[str] = "DROP TEMPORARY TABLE IF EXISTS {}"  # plain DROP TABLE would commit
    STAGE_SURVIVES_ROLLBACK: ClassVar[bool] = True  # CREATE TEMPORARY TABLE is not undone by a rollback
    TRANSACTIONAL_DDL: ClassVar[bool] = False  # CREATE/ALTER TABLE commit at once
    NOT_NULL_SUFFIX: ClassVar[str] = " NOT NULL"  # MODIFY COLUMN restates the whole column
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

    @classmethod
    def validate_source(cls, options: Mapping[str, Any], where: str) -> None:
        """Besides query or table, a MySQL source takes ``zero_dates: null`` (read zero dates as NULL)
        or ``zero_dates: error`` (the default: stop the read naming the column and a row)."""
        unknown = set(options) - set(SOURCE_OPTIONS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))} for a {cls.kind} source "
                f"(it takes query or table, and zero_dates: null)"
            )
        if "zero_dates" in options and _option_text(options["zero_dates"]) not in SOURCE_OPTIONS["zero_dates"]:
            raise ConfigError(
                f"{where}.zero_dates: expected null (read zero dates such as 0000-00-00 as NULL) or error "
                f"(stop the run, the default), got {options['zero_dates']!r}"
            )

    def convert_rows(self, description: Sequence[Any], request: ReadRequest) -> Callable[[Chunk], Chunk] | None:
        """PyMySQL's values made loadable: BIT as bool (BIT(1)) or int, TIME as a time of day, and a
        zero date (PyMySQL returns it as text) as NULL with ``zero_dates: null``, else a FatalError."""
        fixes = [(i, d[1], int(d[3] or 0)) for i, d in enumerate(description) if d[1] in {BIT, TIME, *DATE_TYPES}]
        if not fixes:
            return None
        names = [str(d[0]) for d in description]
        key = _key_index(names, request)
        null_dates = _zero_dates_as_null(request)

        def convert(chunk: Chunk) -> Chunk:
            fixed = []
            for row in chunk:
                values = list(row)
                for index, type_code, width in fixes:
                    value = values[index]
                    if value is None:
                        continue
                    if type_code == BIT:
                        number = int.from_bytes(value, "big") if isinstance(value, bytes) else int(value)
                        values[index] = bool(number) if width == 1 else number
                    elif type_code == TIME and isinstance(value, timedelta):
                        if not timedelta(0) <= value < ONE_DAY:
                            example = (names[key], row[key]) if key is not None else None
                            raise self._invalid_value(request, names[index], TIME, _time_text(value), example)
                        values[index] = (datetime.min + value).time()
                    elif type_code in DATE_TYPES and isinstance(value, str):  # PyMySQL could not parse it
                        if not null_dates:
                            example = (names[key], row[key]) if key is not None else None
                            raise self._invalid_value(request, names[index], type_code, value, example)
                        values[index] = None
                fixed.append(tuple(values))
            return fixed

        return convert

    def _invalid_value(
        self, request: ReadRequest, column: str, type_code: int, value: str, example: tuple[str, Any] | None
    ) -> FatalError:
        """The one line that stops a read at a value no target type can hold: where, which column,
        an example row (its value of the table's first key) and what to do."""
        where = f"table {request.table}" if request.table is not None else f"query {_snippet(request.sql or '')!r}"
        row = f" (e.g. the row with {example[0]} = {example[1]!r})" if example is not None else ""
        if type_code == TIME:
            text = (
                f"{where}, column {column} holds the TIME {value}{row}, beyond the 00:00:00-23:59:59 a "
                f"time column holds (MySQL TIME spans -838:59:59 to 838:59:59)"
            )
            hint = (
                f"select it in a query: file as TIME_TO_SEC({column}) AS {column} (seconds) or "
                f"CAST({column} AS CHAR) AS {column} (text, for an interval column)"
            )
        else:
            text = f"{where}, column {column} holds the zero or invalid date {value!r}{row}, which is no date"
            hint = (
                "add zero_dates: null to the table's source: in project.yml to read such dates as NULL, "
                "or correct the rows in MySQL"
            )
        return FatalError(render(self.kind, self.name, self.safe_url, "read", fatal(text, hint)))

    def describe_query(self, conn: Any, sql: str) -> list[tuple[str, Any, bool]]:
        """MySQL has no temporary views: an empty temporary table made from the query (which does not end
        the transaction, unlike other DDL), reflected, then dropped."""
        name = "_etl_describe"
        quoted = conn.dialect.identifier_preparer.quote(name)
        body = self._literal_query(conn, sql)
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {quoted} AS SELECT * FROM ({body}) AS q LIMIT 0")
        try:
            return self.describe_table(conn, TableName(name))
        finally:
            conn.exec_driver_sql(f"DROP TEMPORARY TABLE {quoted}")

    def portable_type(self, kind: Any) -> Any:
        from connectors.columns import for_mysql_source

        return for_mysql_source(kind)

    def widen_statement(self, table: str, column: str, kind: Any, dialect: Any) -> str | None:
        return f"ALTER TABLE {table} MODIFY COLUMN {column} {kind.compile(dialect=dialect)}"

    def key_type(self, kind: Any) -> Any:
        """MySQL keys a character column only with a length: text keys become VARCHAR(255)."""
        import sqlalchemy.types as sat

        if isinstance(kind, sat.String) and not kind.length:
            return sat.String(255)
        return kind

    def can_index(self, kind: Any) -> bool:
        import sqlalchemy.types as sat

        return not isinstance(kind, sat.LargeBinary | sat.JSON) and not (
            isinstance(kind, sat.String) and not kind.length
        )

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
        scales and fails on some values), which PostgreSQL parses back exactly. Zero dates and TIME
        beyond a day never reach connectorx, which would panic naming no column (see _arrow_select).

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
        limit_malloc_arenas()  # as script_runner.py does, for callers that start elsewhere
        prefer_system_arrow_pool()
        stmt, params = self.select_for(request)
        if not all(_renderable(v) for v in [*params.values(), request.window_start, request.window_end]):
            return None
        description, unsigned = self._describe(stmt, params)
        if not _arrow_ready(description, request, self.name):
            return None
        readable, flagged = _arrow_select(stmt, description, _zero_dates_as_null(request))
        sql = self._literal(readable)
        pieces = self._pieces(sql, _split_column(description, request))
        first_piece = next(pieces)
        batch_rows = min(request.chunk_size, ARROW_BATCH_ROWS)
        first = self._open(first_piece[0], batch_rows)
        schema = first.schema
        batches = read_ahead(self._batches(first, first_piece, pieces, batch_rows), READ_AHEAD_BATCHES)
        if flagged:
            schema = schema.remove(schema.get_field_index(INVALID_FLAG))
            batches = self._checked(batches, schema, description, request)
        return ArrowStream(list(schema.names), _with_decimal_scales(schema, description, unsigned), batches)

    def _checked(
        self, batches: Iterator[Any], schema: Any, description: Sequence[Any], request: ReadRequest
    ) -> Iterator[Any]:
        """The batches without the :data:`INVALID_FLAG` column; a FatalError naming the column and a row
        at the first value the flag reports (a zero date, a TIME beyond a day)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        names = [str(d[0]) for d in description]
        key = _key_index(names, request)
        for batch in batches:
            flags = batch.column(batch.num_columns - 1)
            if flags.null_count < len(flags):
                row = pc.indices_nonzero(pc.is_valid(flags))[0].as_py()
                index, value = str(flags[row].as_py()).split(":", 1)
                example = (names[key], batch.column(key)[row].as_py()) if key is not None else None
                column = int(index)
                raise self._invalid_value(request, names[column], description[column][1], value, example)
            yield pa.RecordBatch.from_arrays(batch.columns[:-1], schema=schema)

    def _describe(self, stmt: Any, params: dict[str, Any]) -> tuple[list[tuple[Any, ...]], frozenset[int] | None]:
        """The query's DB-API description, and the positions of its UNSIGNED columns (None if PyMySQL
        does not say: the description leaves the flag out)."""
        from sqlalchemy import TextClause, literal_column, select

        source = (
            stmt.columns().subquery("etl_describe") if isinstance(stmt, TextClause) else stmt.subquery("etl_describe")
        )
        probe: Any = select(literal_column("*")).select_from(source).limit(0)
        with self.translate_errors("describe the query"), self.read_connection() as conn:
            cursor = conn.execute(probe, params).cursor
            fields = getattr(getattr(cursor, "_result", None), "fields", None)
            unsigned = frozenset(i for i, f in enumerate(fields) if f.flags & UNSIGNED_FLAG) if fields else None
            return list(cursor.description), unsigned

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


def _arrow_select(stmt: Any, description: Sequence[Any], zero_dates_as_null: bool) -> tuple[Any, bool]:
    """``stmt`` with the columns connectorx cannot read as they are rewritten, and whether the last column
    is :data:`INVALID_FLAG`: DECIMAL as its exact text (connectorx's decimal128(38, 10) would round
    wider scales), and the values connectorx would stop at with a Rust panic naming no column as NULL:
    zero or invalid dates (``0000-00-00``, ``2024-00-15``: DATE_ADD(c, INTERVAL 0 DAY) IS NULL for
    them) and TIME outside 00:00:00-23:59:59. Unless zero dates are to be read as NULL, the flag column
    carries "<column index>:<value>" of a row's first such value, so the read can stop naming it.
    Only column names and constants are rendered, never a value."""
    from sqlalchemy import CHAR, TextClause, and_, case, cast, column, func, literal, literal_column, null, or_, select

    items: list[Any] = []
    checks: list[tuple[Any, Any]] = []
    rewritten = False
    for index, (name, type_code, *_) in enumerate(description):
        ref: Any = column(str(name))
        invalid = None
        if type_code in DATE_TYPES:
            invalid = and_(ref.isnot(None), func.date_add(ref, literal_column("INTERVAL 0 DAY")).is_(None))
        elif type_code == TIME:
            invalid = or_(func.time_to_sec(ref) < 0, func.time_to_sec(ref) >= 86400)
        if type_code == NEWDECIMAL:
            items.append(cast(ref, CHAR).label(str(name)))
            rewritten = True
        elif invalid is not None:
            items.append(case((invalid, null()), else_=ref).label(str(name)))
            rewritten = True
            if type_code == TIME or not zero_dates_as_null:
                checks.append((invalid, func.concat(literal(index), literal(":"), cast(ref, CHAR))))
        else:
            items.append(ref)
    if not rewritten:
        return stmt, False
    if checks:
        items.append(case(*checks, else_=null()).label(INVALID_FLAG))
    source = (stmt.columns() if isinstance(stmt, TextClause) else stmt).subquery("etl_src")
    return select(*items).select_from(source), bool(checks)


def _with_decimal_scales(schema: Any, description: Sequence[Any], unsigned: frozenset[int] | None) -> Any:
    """``schema`` with each DECIMAL column (read as text) marked with its scale for an exact binary
    write (:data:`connectors.pg_binary.DECIMAL_SCALE`), when its precision fits Arrow's decimal128.

    The protocol gives a DECIMAL(p, s) the display length p + (1 if s) + (1 unless UNSIGNED)."""
    from connectors.pg_binary import DECIMAL_SCALE

    for index, (_, type_code, _, length, _, scale, *_) in enumerate(description):
        if type_code != NEWDECIMAL or length is None or scale is None:
            continue
        sign = 0 if unsigned is None or index in unsigned else 1  # unknown: assume no sign, the wider precision
        if int(length) - (1 if scale else 0) - sign <= MAX_ARROW_DECIMAL:
            field = schema.field(index)
            metadata = {**(field.metadata or {}), DECIMAL_SCALE: str(int(scale)).encode()}
            schema = schema.set(index, field.with_metadata(metadata))
    return schema


def _split_column(description: list[tuple[Any, ...]], request: ReadRequest) -> str | None:
    """The integer column to read in ranges: the first key, else the cursor; None if neither is an integer."""
    types = {str(d[0]).lower(): (str(d[0]), d[1]) for d in description}
    for candidate in (*request.keys[:1], *([request.cursor] if request.cursor else [])):
        found = types.get(candidate.lower())
        if found and found[1] in INTEGER_TYPES:
            return found[0]
    return None


def _key_index(names: Sequence[str], request: ReadRequest) -> int | None:
    """The position of the table's first key among ``names`` (case-insensitive), or None."""
    lowered = [n.lower() for n in names]
    if request.keys and request.keys[0].lower() in lowered:
        return lowered.index(request.keys[0].lower())
    return None


def _zero_dates_as_null(request: ReadRequest) -> bool:
    return "zero_dates" in request.options and _option_text(request.options["zero_dates"]) == "null"


def _option_text(value: Any) -> str:
    """A YAML value as the option's word: ``null`` (None) or the text itself."""
    return "null" if value is None else str(value).strip().lower()


def _snippet(sql: str, limit: int = 60) -> str:
    """The start of a query on one line, to name it in a message."""
    text = " ".join(strip_comments(sql).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _time_text(value: timedelta) -> str:
    """A TIME as MySQL writes it: [-]HHH:MM:SS[.ffffff]."""
    sign, value = ("-", -value) if value < timedelta(0) else ("", value)
    hours, rest = divmod(value.days * 86400 + value.seconds, 3600)
    text = f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{value.microseconds:06d}" if value.microseconds else text


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
