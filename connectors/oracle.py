"""Oracle Database as a source, through python-oracledb in thin mode (no Oracle Client libraries needed).

Fetched types: NUMBER -> Decimal (int for NUMBER(p,0)), DATE and TIMESTAMP -> naive datetime,
TIMESTAMP WITH (LOCAL) TIME ZONE -> aware datetime in UTC, CLOB/NCLOB -> str, BLOB/RAW -> bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import Capabilities, import_driver
from connectors.driver_errors import Verdict, credential_variables, fatal, first_lines, transient
from connectors.sql import SqlConnector

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.sql import Executable

#: rows per network round trip while streaming (the cursor's arraysize), at most this many
MAX_ARRAYSIZE = 10_000

# Error codes, grouped by what the runner should do about them.
_AUTH_CODES = {"ORA-01017", "ORA-01005", "ORA-01045", "ORA-28000", "ORA-28001", "ORA-28009", "DPY-4001"}
_UNREACHABLE_CODES = {
    "ORA-12541",  # no listener
    "ORA-12514",  # listener does not know the service (yet)
    "ORA-12505",  # listener does not know the SID (yet)
    "ORA-12170",  # connect timeout
    "ORA-12537",  # connection closed
    "ORA-12547",  # lost contact
    "ORA-12516",  # listener could not find an available handler
    "ORA-12519",
    "ORA-12520",
    "ORA-12521",
    "ORA-12528",  # instance blocking new connections
    "ORA-01033",  # initialization or shutdown in progress
    "ORA-01034",  # instance not available
    "ORA-01089",  # immediate shutdown in progress
    "ORA-03113",  # end-of-file on communication channel
    "ORA-03114",  # not connected
    "ORA-03135",  # connection lost contact
    "DPY-6005",  # cannot connect to database
    "DPY-6000",  # listener refused connection
    "DPY-6001",  # service not registered with the listener
    "DPY-6003",  # SID not registered with the listener
    "DPY-4011",  # the database or network closed the connection
    "DPY-4024",  # call timeout exceeded
}
_BUSY_CODES = {"ORA-00060", "ORA-08177", "ORA-00051", "ORA-00054"}  # deadlock, serialization, waits
_MISSING_CODES = {"ORA-00942", "ORA-04043", "ORA-00904", "ORA-01031"}
_NAMED_ZONE_CODE = "DPY-3022"

_NUMBER_WITH_ARGS = re.compile(r"^(NUMBER|DECIMAL|NUMERIC)\s*\(\s*(\*|\d+)\s*(?:,\s*(-?\d+)\s*)?\)$")
_ARGS = re.compile(r"\s*\(([^)]*)\)")  # (100 CHAR), (3), (2) in INTERVAL DAY(2) TO SECOND(6)

#: Oracle type name (as in ALL_TAB_COLUMNS.DATA_TYPE, without length) -> PostgreSQL column type.
POSTGRES_TYPES: dict[str, str] = {
    "NUMBER": "numeric",
    "FLOAT": "numeric",
    "INTEGER": "numeric(38,0)",
    "SMALLINT": "numeric(38,0)",
    "BINARY_FLOAT": "real",
    "BINARY_DOUBLE": "double precision",
    "DATE": "timestamp(0)",
    "TIMESTAMP": "timestamp(6)",
    "TIMESTAMP WITH TIME ZONE": "timestamptz(6)",
    "TIMESTAMP WITH LOCAL TIME ZONE": "timestamptz(6)",
    "INTERVAL DAY TO SECOND": "interval",
    "INTERVAL YEAR TO MONTH": "interval",
    "CHAR": "text",
    "NCHAR": "text",
    "VARCHAR2": "text",
    "NVARCHAR2": "text",
    "VARCHAR": "text",
    "LONG": "text",
    "CLOB": "text",
    "NCLOB": "text",
    "ROWID": "text",
    "UROWID": "text",
    "RAW": "bytea",
    "LONG RAW": "bytea",
    "BLOB": "bytea",
    "BOOLEAN": "boolean",
    "JSON": "jsonb",
}


def postgres_type(oracle_type: str) -> str:
    """The PostgreSQL column type for an Oracle column type such as ``NUMBER(12,2)``, ``VARCHAR2(100 CHAR)``
    or ``TIMESTAMP(3) WITH TIME ZONE``; raises ValueError for a type this connector does not map."""
    name = " ".join(oracle_type.upper().split())
    number = _NUMBER_WITH_ARGS.match(name)
    if number:
        return _number_type(number.group(2), number.group(3))
    base = " ".join(_ARGS.sub("", name).split())
    if base not in POSTGRES_TYPES:
        raise ValueError(f"no PostgreSQL mapping for Oracle type {oracle_type!r}")
    mapped = POSTGRES_TYPES[base]
    fraction = _ARGS.search(name)
    if base.startswith("TIMESTAMP") and fraction and fraction.group(1).strip().isdigit():
        return mapped.replace("(6)", f"({min(int(fraction.group(1)), 6)})")
    return mapped


def _number_type(precision: str, scale: str | None) -> str:
    if precision == "*" and scale is None:
        return "numeric"
    digits, places = (38 if precision == "*" else int(precision)), int(scale or 0)
    if places > 0:
        return f"numeric({digits},{places})"
    if places < 0:
        return "numeric"
    if digits <= 4:
        return "smallint"
    if digits <= 9:
        return "integer"
    if digits <= 18:
        return "bigint"
    return f"numeric({digits},0)"


# -- fetching: the output type handler ---------------------------------------------------------


def as_utc(value: datetime) -> datetime:
    """A TIMESTAMP WITH TIME ZONE value the read normalised to +00:00 (the driver drops the offset)."""
    return value.replace(tzinfo=UTC)


def interval_ym_text(value: Any) -> str:
    """An ``oracledb.IntervalYM`` as ISO 8601 text (``P1Y2M``), which PostgreSQL's interval accepts."""
    return f"P{value.years}Y{value.months}M"


def fetch_plan(db_type: Any, precision: int, scale: int) -> tuple[Any, Callable[[Any], Any] | None] | None:
    """The (variable type, outconverter) to fetch a column with, or None for the driver's default.

    NUMBER is never fetched as float: NUMBER(p,0) as int, every other NUMBER (and FLOAT) as Decimal.
    LOBs are fetched inline (str / bytes), TIMESTAMP WITH TIME ZONE as an aware UTC datetime.
    """
    import oracledb

    if db_type is oracledb.DB_TYPE_NUMBER:
        return (int, None) if precision > 0 and scale == 0 else (Decimal, None)
    if db_type is oracledb.DB_TYPE_TIMESTAMP_TZ:
        return oracledb.DB_TYPE_TIMESTAMP_TZ, as_utc
    if db_type is oracledb.DB_TYPE_CLOB:
        return oracledb.DB_TYPE_LONG, None
    if db_type is oracledb.DB_TYPE_NCLOB:
        return oracledb.DB_TYPE_LONG_NVARCHAR, None
    if db_type is oracledb.DB_TYPE_BLOB:
        return oracledb.DB_TYPE_LONG_RAW, None
    if db_type is oracledb.DB_TYPE_INTERVAL_YM:
        return oracledb.DB_TYPE_INTERVAL_YM, interval_ym_text
    return None


def output_type_handler(fallback: Callable[..., Any] | None) -> Callable[..., Any]:
    """A connection-level output type handler applying :func:`fetch_plan`, else ``fallback``
    (SQLAlchemy's own handler, which stays in charge of JSON and the rest)."""

    def handler(cursor: Any, name: str, default_type: Any, size: int, precision: int, scale: int) -> Any:
        plan = fetch_plan(default_type, precision, scale)
        if plan is None:
            return fallback(cursor, name, default_type, size, precision, scale) if fallback else None
        var_type, converter = plan
        return cursor.var(var_type, arraysize=cursor.arraysize, outconverter=converter)

    return handler


def timestamp_bind_needed(value: Any) -> bool:
    """True for a datetime with fractional seconds: bound as DATE (the driver's default) it would lose them."""
    return isinstance(value, datetime) and value.microsecond != 0


# -- the read statement: zoned timestamps become UTC on the server -----------------------------


def as_subquery(stmt: Executable, name: str) -> Any:
    """``stmt`` (a text query or a select) as a named subquery (Oracle renders it without AS)."""
    from sqlalchemy.sql.elements import TextClause

    if isinstance(stmt, TextClause):
        return stmt.columns().subquery(name)
    return stmt.subquery(name)  # type: ignore[attr-defined]


def describe_probe(stmt: Executable) -> Executable:
    """``SELECT * FROM (stmt) probe WHERE 1 = 0``: the result columns and their types, no rows."""
    from sqlalchemy import literal_column, select, text

    return select(literal_column("*")).select_from(as_subquery(stmt, "probe")).where(text("1 = 0"))


def utc_select(stmt: Executable, columns: list[tuple[str, bool]], normalize: Callable[[str], str]) -> Executable:
    """Select every column of ``stmt`` by its exact name, zoned ones as ``FROM_TZ(SYS_EXTRACT_UTC(c),
    '+00:00')`` so the driver receives them at offset 0; labels are the names the plain read returns."""
    from sqlalchemy import column, func, literal_column, select
    from sqlalchemy.sql.elements import quoted_name

    source = as_subquery(stmt, "src_utc")
    items = []
    for name, zoned in columns:
        ref: Any = column(quoted_name(name, quote=True))
        expr = func.from_tz(func.sys_extract_utc(ref), literal_column("'+00:00'")) if zoned else ref
        items.append(expr.label(normalize(name)))
    return select(*items).select_from(source)


# -- errors -------------------------------------------------------------------------------------


def classify(orig: BaseException, password_variable: str = "the connection URL") -> Verdict | None:
    """The verdict for an oracledb error by its ORA-/DPY- code, or None for the generic translation."""
    error = orig.args[0] if orig.args else None
    code = getattr(error, "full_code", None)
    if not code:
        return None
    text = first_lines(getattr(error, "message", "") or str(orig))
    if code in _AUTH_CODES:
        return fatal(text, f"check the user and password ({password_variable}) and that the account is open")
    if code in _UNREACHABLE_CODES:
        return transient(text, "check that the server is running and reachable (host, port, service_name)")
    if code in _BUSY_CODES:
        return transient(text, "the database was busy (deadlock, lock wait or serialization); the run retries")
    if code in _MISSING_CODES:
        return fatal(text, "check the table and column names (and schema) in the query and the user's grants")
    if code == _NAMED_ZONE_CODE:
        return fatal(text, "convert the column in the query, e.g. SYS_EXTRACT_UTC(col) AS col")
    if getattr(error, "isrecoverable", False):
        return transient(text, "the database reported a recoverable error; the run retries")
    return None


# -- the connector ------------------------------------------------------------------------------


class OracleConnector(SqlConnector):
    """``oracle://user:password@host:1521/?service_name=ORCLPDB1`` (or ``oracle+oracledb://``), thin mode.

    The password may instead come from ``ETL_CONN_<NAME>_PASSWORD``.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=False, merge=False)
    kind: ClassVar[str] = "Oracle"
    driver: ClassVar[str | None] = "oracledb"

    @property
    def database_name(self) -> str:
        url = self.sqlalchemy_url()
        return str(url.query.get("service_name") or url.database or self.name)

    def engine_options(self) -> dict[str, Any]:
        timeout = float(self.variable("ETL_CONNECT_TIMEOUT", "15") or 15)
        return {**super().engine_options(), "connect_args": {"tcp_connect_timeout": timeout}}

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            import_driver(
                "oracledb", kind=self.kind, connection=self.name, package="oracledb (thin mode: no Oracle Client)"
            )
        return super().engine

    def on_engine(self, engine: Engine) -> None:
        from sqlalchemy import event

        event.listen(engine, "connect", _install_type_handler)
        event.listen(engine, "before_cursor_execute", _size_fetches)
        event.listen(engine, "do_setinputsizes", _keep_fractional_seconds)

    def classify_driver_error(self, orig: BaseException) -> Verdict | None:
        return classify(orig, credential_variables(self.name))

    def prepare_read(self, conn: Connection, stmt: Executable, params: Mapping[str, Any]) -> Executable:
        """Rewrite TIMESTAMP WITH (LOCAL) TIME ZONE columns to UTC on the server (thin mode drops offsets)."""
        import oracledb

        zoned_types = (oracledb.DB_TYPE_TIMESTAMP_TZ, oracledb.DB_TYPE_TIMESTAMP_LTZ)
        result = conn.execute(describe_probe(stmt), dict(params))
        try:
            columns = [(info[0], info[1] in zoned_types) for info in result.cursor.description]
        finally:
            result.close()
        if not any(zoned for _, zoned in columns):
            return stmt
        return utc_select(stmt, columns, conn.dialect.normalize_name)

    def server_version(self, conn: Connection) -> str:
        from sqlalchemy.exc import DBAPIError

        try:
            banner = conn.exec_driver_sql("SELECT banner FROM v$version WHERE ROWNUM = 1").scalar()
        except DBAPIError:  # no access to v$version: the version the driver saw at login
            banner = None
        return str(banner) if banner else super().server_version(conn)


def _install_type_handler(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.outputtypehandler = output_type_handler(dbapi_connection.outputtypehandler)


def _size_fetches(_conn: Any, cursor: Any, _sql: str, _params: Any, context: Any, _many: bool) -> None:
    """A streaming read fetches ``min(chunk_size, MAX_ARRAYSIZE)`` rows per round trip."""
    rows = context.execution_options.get("yield_per") if context is not None else None
    if rows:
        cursor.arraysize = min(int(rows), MAX_ARRAYSIZE)


def _keep_fractional_seconds(
    inputsizes: dict[Any, Any], _cursor: Any, _sql: str, parameters: Any, context: Any
) -> None:
    """Bind datetimes with fractional seconds as TIMESTAMP (others stay DATE, which keeps DATE indexes usable)."""
    import oracledb

    values = parameters[0] if parameters and isinstance(parameters[0], Mapping) else {}
    names = context.compiled.bind_names if context is not None and context.compiled is not None else {}
    for bind in list(inputsizes):
        value = values.get(names.get(bind, bind.key), bind.effective_value)
        if timestamp_bind_needed(value):
            inputsizes[bind] = oracledb.DB_TYPE_TIMESTAMP
