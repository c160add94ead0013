"""Microsoft SQL Server as a source, through pyodbc and Microsoft's ODBC driver (unixODBC on Linux).

Fetched types: DECIMAL/NUMERIC/MONEY -> Decimal, BIT -> bool, DATETIME2 -> naive datetime,
DATETIMEOFFSET -> aware datetime, NVARCHAR(MAX) -> str, UNIQUEIDENTIFIER -> str, VARBINARY -> bytes.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import Capabilities, import_driver
from connectors.driver_errors import Verdict, credential_variables, fatal, first_lines, transient
from connectors.sql import SqlConnector
from utilities.errors import FatalError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

DEFAULT_ODBC_DRIVER = "ODBC Driver 18 for SQL Server"
#: ODBC SQL type of DATETIMEOFFSET (SQL_SS_TIMESTAMPOFFSET in Microsoft's msodbcsql.h)
SQL_SS_TIMESTAMPOFFSET = -155
_DATETIMEOFFSET = struct.Struct("<6hI2h")  # year month day hour minute second, nanoseconds, tz hour, tz minute

INSTALL_HINT = (
    "install it: on Debian/Ubuntu, apt-get install unixodbc, then Microsoft's msodbcsql18 package "
    "(ACCEPT_EULA=Y apt-get install msodbcsql18, from Microsoft's package repository for your release); "
    'on Windows, run Microsoft\'s "ODBC Driver 18 for SQL Server" installer'
)

_AUTH_STATES = {"28000"}
_AUTH_NUMBERS = {18456, 18452, 18486, 18487, 18488, 4060}  # login failed / locked / expired / cannot open db
_UNREACHABLE_STATES = {"08001", "08S01", "08004", "HYT00", "HYT01", "40001"}
_MISSING_STATES = {"42S02", "42S22"}
_MISSING_NUMBERS = {208, 207}  # invalid object name / invalid column name
_NUMBERED = re.compile(r"\((\d+)\)")

#: SQL Server type name -> PostgreSQL column type (length and precision arguments handled by postgres_type).
POSTGRES_TYPES: dict[str, str] = {
    "BIT": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INT": "integer",
    "BIGINT": "bigint",
    "DECIMAL": "numeric",
    "NUMERIC": "numeric",
    "MONEY": "numeric(19,4)",
    "SMALLMONEY": "numeric(10,4)",
    "FLOAT": "double precision",
    "REAL": "real",
    "DATE": "date",
    "TIME": "time",
    "DATETIME": "timestamp(3)",
    "DATETIME2": "timestamp(6)",
    "SMALLDATETIME": "timestamp(0)",
    "DATETIMEOFFSET": "timestamptz(6)",
    "CHAR": "text",
    "VARCHAR": "text",
    "NCHAR": "text",
    "NVARCHAR": "text",
    "TEXT": "text",
    "NTEXT": "text",
    "XML": "text",
    "BINARY": "bytea",
    "VARBINARY": "bytea",
    "IMAGE": "bytea",
    "ROWVERSION": "bytea",
    "TIMESTAMP": "bytea",  # the old name of ROWVERSION, not a date
    "UNIQUEIDENTIFIER": "uuid",
}
_TYPE = re.compile(r"^([A-Z0-9_]+)\s*(?:\(\s*([^)]*)\))?$")


def postgres_type(sqlserver_type: str) -> str:
    """The PostgreSQL column type for a SQL Server type such as ``DECIMAL(12,2)`` or ``NVARCHAR(MAX)``;
    raises ValueError for a type this connector does not map (e.g. SQL_VARIANT, GEOGRAPHY)."""
    match = _TYPE.match(" ".join(sqlserver_type.upper().split()))
    if not match or match.group(1) not in POSTGRES_TYPES:
        raise ValueError(f"no PostgreSQL mapping for SQL Server type {sqlserver_type!r}")
    base, args = match.group(1), [a.strip() for a in (match.group(2) or "").split(",") if a.strip()]
    if base in ("DECIMAL", "NUMERIC") and args:
        return f"numeric({args[0]},{args[1] if len(args) > 1 else 0})"
    if base == "FLOAT" and args and int(args[0]) <= 24:
        return "real"
    if base in ("DATETIME2", "DATETIMEOFFSET", "TIME") and args:
        fraction = min(int(args[0]), 6)
        return {"DATETIME2": f"timestamp({fraction})", "DATETIMEOFFSET": f"timestamptz({fraction})"}.get(
            base, f"time({fraction})"
        )
    return POSTGRES_TYPES[base]


def datetimeoffset_from_bytes(raw: bytes) -> datetime:
    """A DATETIMEOFFSET as pyodbc hands it over (SQL_SS_TIMESTAMPOFFSET_STRUCT, 20 bytes) -> aware datetime.

    The fraction is in nanoseconds (SQL Server keeps 100 ns); Python keeps microseconds.
    """
    year, month, day, hour, minute, second, nanos, tz_hour, tz_minute = _DATETIMEOFFSET.unpack(raw)
    zone = timezone(timedelta(hours=tz_hour, minutes=tz_minute))
    return datetime(year, month, day, hour, minute, second, nanos // 1000, tzinfo=zone)


def missing_odbc_driver(requested: str, installed: Iterable[str]) -> str | None:
    """The message for an ODBC driver name the driver manager does not know, or None when it is there."""
    names = list(installed)
    if requested in names:
        return None
    listed = ", ".join(repr(n) for n in names) if names else "none"
    return f"the ODBC driver {requested!r} is not installed (installed ODBC drivers: {listed}); {INSTALL_HINT}"


def classify(orig: BaseException, password_variable: str = "the connection URL") -> Verdict | None:
    """The verdict for a pyodbc error from its ``(sqlstate, message)`` arguments, or None."""
    if len(orig.args) < 2 or not isinstance(orig.args[0], str):
        return None
    state, message = orig.args[0], str(orig.args[1])
    numbers = {int(n) for n in _NUMBERED.findall(message)}
    text = first_lines(message, 1)
    lowered = message.lower()
    if state == "IM002" or "can't open lib" in lowered or "data source name not found" in lowered:
        return fatal(text, f"the ODBC driver named in the URL is missing; {INSTALL_HINT}")
    if state in _AUTH_STATES or numbers & _AUTH_NUMBERS:
        return fatal(text, f"check the user and password ({password_variable}) and the database name")
    if "certificate" in lowered:
        return fatal(text, "add TrustServerCertificate=yes to the URL query, or trust the server's certificate")
    if 1033 in numbers:
        return fatal(text, "remove ORDER BY from the query: the window wraps it as a derived table")
    if state in _UNREACHABLE_STATES or 1205 in numbers:
        return transient(text, "check that the server is running and reachable (host, port, firewall)")
    if state in _MISSING_STATES or numbers & _MISSING_NUMBERS:
        return fatal(text, "check the table and column names (and schema) in the query and the user's grants")
    return None


class SqlServerConnector(SqlConnector):
    """``mssql://user:password@host:1433/db?driver=ODBC+Driver+18+for+SQL+Server&TrustServerCertificate=yes``
    (``sqlserver://`` is an alias). Without ``driver=`` the connector uses ``ETL_CONN_<NAME>_ODBC_DRIVER``,
    else ODBC Driver 18; the password may come from ``ETL_CONN_<NAME>_PASSWORD``."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=False, merge=False)
    kind: ClassVar[str] = "SQL Server"
    driver: ClassVar[str | None] = "pyodbc"

    def sqlalchemy_url(self) -> Any:
        url = super().sqlalchemy_url().set(drivername="mssql+pyodbc")
        if "odbc_connect" not in url.query and "driver" not in url.query:
            url = url.update_query_dict({"driver": self.setting("ODBC_DRIVER", DEFAULT_ODBC_DRIVER)})
        return url

    @property
    def dialect(self) -> Any:
        """The dialect pyodbc would use (qmark placeholders), without importing pyodbc."""
        if self._engine is not None:
            return self._engine.dialect
        return self.sqlalchemy_url().get_dialect()(paramstyle="qmark")

    def engine_options(self) -> dict[str, Any]:
        timeout = int(self.variable("ETL_CONNECT_TIMEOUT", "15") or 15)
        return {**super().engine_options(), "connect_args": {"timeout": timeout}}

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._require_odbc()
        return super().engine

    def _require_odbc(self) -> None:
        """Import pyodbc and make sure the ODBC driver named in the URL is installed."""
        try:
            pyodbc = import_driver("pyodbc", kind=self.kind, connection=self.name, package="pyodbc")
        except ImportError as exc:  # libodbc.so.2: cannot open shared object file
            raise FatalError(
                f"{self.kind} connection {self.name!r}: pyodbc cannot load the ODBC driver manager unixODBC "
                f"({exc}); {INSTALL_HINT}"
            ) from exc
        requested = self.sqlalchemy_url().query.get("driver")
        problem = missing_odbc_driver(requested, pyodbc.drivers()) if requested else None
        if problem:
            raise FatalError(f"{self.kind} connection {self.name!r}: {problem}")

    def on_engine(self, engine: Engine) -> None:
        from sqlalchemy import event

        event.listen(engine, "connect", _add_converters)

    def classify_driver_error(self, orig: BaseException) -> Verdict | None:
        return classify(orig, credential_variables(self.name))

    def server_version(self, conn: Connection) -> str:
        version = str(conn.exec_driver_sql("SELECT @@VERSION").scalar() or "")
        return version.strip().splitlines()[0].strip() if version.strip() else super().server_version(conn)


def _add_converters(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.add_output_converter(SQL_SS_TIMESTAMPOFFSET, datetimeoffset_from_bytes)
