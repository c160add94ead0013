"""MySQL and MariaDB: rows through PyMySQL's unbuffered cursor, or Arrow batches through connectorx
when the target takes Arrow (PostgreSQL), which reads at native speed in bounded memory."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from connectors.base import ARROW, ArrowStream, Capabilities, ReadRequest, RowStream
from connectors.sql import SqlConnector
from utilities.errors import FatalError, TransientError

logger = logging.getLogger(__name__)

NEWDECIMAL, BIT = 246, 16  # MySQL protocol type codes
INTEGER_TYPES = {1, 2, 3, 8, 9}  # TINY, SHORT, LONG, LONGLONG, INT24
PIECE_ROWS = 100_000  # rows per key range on the Arrow path (the most connectorx may hold)
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_ .:+\-]*$")


class MysqlConnector(SqlConnector):
    """``mysql://user:password@host:3306/db`` or ``mariadb://...`` (driven by PyMySQL)."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=True, merge=True, direct_write=True)
    kind: ClassVar[str] = "MySQL"
    DROP_STAGE: ClassVar[str] = "DROP TEMPORARY TABLE IF EXISTS {}"  # a rollback does not drop it on MySQL
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
        probe = select(literal_column("*")).select_from(source).limit(0)
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

    def _translate_connectorx(self, action: str) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def translate() -> Iterator[None]:
            try:
                yield
            except BaseException as exc:
                # connectorx reports some failures as a Rust panic (pyo3 PanicException, a BaseException).
                if not isinstance(exc, (RuntimeError, OSError, ValueError)) and type(exc).__name__ != "PanicException":
                    raise
                text = f"{self.kind} connection {self.name!r} ({self.safe_url}): {action} failed: {exc}"
                lowered = str(exc).lower()
                transient = any(m in lowered for m in ("timed out", "refused", "lost connection", "reset", "gone away"))
                raise (TransientError(text) if transient else FatalError(text)) from exc

        return translate()


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
