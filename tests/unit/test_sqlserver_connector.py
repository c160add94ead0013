"""The SQL Server connector without a server: the T-SQL it compiles (qmark binds), bracket quoting, the
ODBC connection string, the type mapping to PostgreSQL, the DATETIMEOFFSET converter and error
translation. What needs a live server is in tests/contract/test_sqlserver_contract.py."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from connectors import open_connector
from connectors.base import ReadRequest, TableName
from connectors.sqlserver import (
    DEFAULT_ODBC_DRIVER,
    SqlServerConnector,
    classify,
    datetimeoffset_from_bytes,
    missing_odbc_driver,
    postgres_type,
)
from utilities.errors import FatalError, TransientError
from utilities.secrets import Secret

URL = "mssql://sa:Pw-1-secret@db.example:1433/sales?driver=ODBC+Driver+18+for+SQL+Server&TrustServerCertificate=yes"
WINDOW = (datetime(2024, 1, 1), datetime(2024, 2, 1))


def _connector(url: str = URL, variables: dict[str, str] | None = None) -> SqlServerConnector:
    connector = open_connector("crm", Secret(url), Path("."), variables)
    assert isinstance(connector, SqlServerConnector)
    return connector


class OdbcError(Exception):
    """Carries what pyodbc.Error carries, ``(sqlstate, message)``. pyodbc itself cannot be imported on this
    machine (no libodbc.so.2), so its exception class cannot be instantiated here."""


def _wrapped(state: str, message: str) -> DBAPIError:
    return DBAPIError.instance("SELECT 1", {}, OdbcError(state, message), OdbcError)


# -- URL, dialect, connection string -------------------------------------------------------------


def test_sqlserver_scheme_is_an_alias_and_the_driver_defaults_to_odbc_18() -> None:
    url = _connector("sqlserver://sa:pw@db.example:1433/sales").sqlalchemy_url()
    assert url.drivername == "mssql+pyodbc"
    assert url.query["driver"] == DEFAULT_ODBC_DRIVER == "ODBC Driver 18 for SQL Server"


def test_driver_and_password_settings() -> None:
    variables = {"ETL_CONN_CRM_ODBC_DRIVER": "ODBC Driver 17 for SQL Server", "ETL_CONN_CRM_PASSWORD": "from-env-1"}
    url = _connector("mssql://sa@db.example:1433/sales", variables).sqlalchemy_url()
    assert (url.query["driver"], url.password) == ("ODBC Driver 17 for SQL Server", "from-env-1")
    assert "from-env-1" not in str(url)
    raw = _connector("mssql://@/?odbc_connect=DSN%3Dwarehouse").sqlalchemy_url()
    assert "driver" not in raw.query  # a raw ODBC connection string is passed on untouched


def test_odbc_connection_string() -> None:
    connector = _connector()
    (conn_str,), kwargs = connector.dialect.create_connect_args(connector.sqlalchemy_url())
    assert conn_str == (
        "DRIVER={ODBC Driver 18 for SQL Server};Server=db.example,1433;Database=sales;"
        "UID=sa;PWD=Pw-1-secret;TrustServerCertificate=yes"
    )
    assert kwargs == {}
    assert connector.engine_options()["connect_args"] == {"timeout": 15}


def test_capabilities_say_source_only() -> None:
    caps = SqlServerConnector.capabilities
    assert (caps.read, caps.write, caps.merge) == (True, False, False)


def test_windowed_query_compiles_to_tsql_with_qmark_binds() -> None:
    request = ReadRequest(
        sql="SELECT id, updated_at FROM dbo.items WHERE region = :region",
        params={"region": "EU"},
        cursor="updated_at",
        filtered=True,
        window_start=WINDOW[0],
        window_end=WINDOW[1],
    )
    connector = _connector()
    stmt, params = connector.select_for(request)
    compiled = stmt.compile(dialect=connector.dialect)
    assert str(compiled) == (
        "SELECT * \nFROM (SELECT id, updated_at FROM dbo.items WHERE region = ?) AS src \n"
        "WHERE src.updated_at > ? AND src.updated_at <= ?"
    )
    assert compiled.positiontup == ["region", "window_start", "window_end"]
    assert params == {"region": "EU"}


@pytest.mark.parametrize(
    ("name", "schema", "cursor", "expected"),
    [
        ("items", "dbo", "updated_at", "SELECT * \nFROM dbo.items \nWHERE dbo.items.updated_at > ?"),
        (
            "Order",
            "Sales",
            "ModifiedDate",
            "SELECT * \nFROM [Sales].[Order] \nWHERE [Sales].[Order].[ModifiedDate] > ?",
        ),
        ("user", None, "changed at", "SELECT * \nFROM [user] \nWHERE [user].[changed at] > ?"),
    ],
)
def test_table_sources_are_bracket_quoted(name: str, schema: str | None, cursor: str, expected: str) -> None:
    request = ReadRequest(table=TableName(name, schema), cursor=cursor, filtered=True, window_start=WINDOW[0])
    connector = _connector()
    stmt, _ = connector.select_for(request)
    assert str(stmt.compile(dialect=connector.dialect)) == expected


def test_reserved_words_are_quoted() -> None:
    preparer = _connector().dialect.identifier_preparer
    assert [preparer.quote(n) for n in ("order", "ORDER", "user", "select", "items")] == [
        "[order]",
        "[ORDER]",
        "[user]",
        "[select]",
        "items",
    ]


# -- types ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sqlserver", "postgres"),
    [
        ("BIT", "boolean"),
        ("TINYINT", "smallint"),
        ("INT", "integer"),
        ("BIGINT", "bigint"),
        ("DECIMAL(12,2)", "numeric(12,2)"),
        ("numeric(18)", "numeric(18,0)"),
        ("MONEY", "numeric(19,4)"),
        ("FLOAT", "double precision"),
        ("FLOAT(24)", "real"),
        ("REAL", "real"),
        ("DATE", "date"),
        ("TIME(7)", "time(6)"),
        ("DATETIME", "timestamp(3)"),
        ("DATETIME2", "timestamp(6)"),
        ("DATETIME2(3)", "timestamp(3)"),
        ("DATETIMEOFFSET", "timestamptz(6)"),
        ("DATETIMEOFFSET(7)", "timestamptz(6)"),
        ("SMALLDATETIME", "timestamp(0)"),
        ("NVARCHAR(MAX)", "text"),
        ("VARCHAR(50)", "text"),
        ("NCHAR(2)", "text"),
        ("XML", "text"),
        ("UNIQUEIDENTIFIER", "uuid"),
        ("VARBINARY(MAX)", "bytea"),
        ("ROWVERSION", "bytea"),
    ],
)
def test_sqlserver_types_map_to_postgres(sqlserver: str, postgres: str) -> None:
    assert postgres_type(sqlserver) == postgres


def test_an_unmapped_type_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="SQL_VARIANT"):
        postgres_type("SQL_VARIANT")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            (2024, 3, 31, 22, 30, 15, 123456700, 2, 0),
            datetime(2024, 3, 31, 22, 30, 15, 123456, timezone(timedelta(hours=2))),
        ),
        (
            (2024, 1, 1, 0, 0, 0, 0, -5, -30),
            datetime(2024, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        ),
        ((1999, 12, 31, 23, 59, 59, 999999999, 0, 0), datetime(1999, 12, 31, 23, 59, 59, 999999, UTC)),
    ],
)
def test_datetimeoffset_bytes_become_aware_datetimes(fields: tuple[int, ...], expected: datetime) -> None:
    raw = struct.pack("<6hI2h", *fields)  # SQL_SS_TIMESTAMPOFFSET_STRUCT, as pyodbc hands it to a converter
    assert len(raw) == 20
    value = datetimeoffset_from_bytes(raw)
    assert value == expected and value.utcoffset() == expected.utcoffset()


# -- missing driver, errors ----------------------------------------------------------------------


def test_a_missing_odbc_driver_is_named_with_what_is_installed() -> None:
    message = missing_odbc_driver("ODBC Driver 18 for SQL Server", ["FreeTDS", "PostgreSQL Unicode"])
    assert message is not None
    assert message.startswith("the ODBC driver 'ODBC Driver 18 for SQL Server' is not installed")
    assert "installed ODBC drivers: 'FreeTDS', 'PostgreSQL Unicode'" in message
    assert "apt-get install unixodbc" in message and "msodbcsql18" in message and "installer" in message
    assert "installed ODBC drivers: none" in (missing_odbc_driver("ODBC Driver 18 for SQL Server", []) or "")
    assert missing_odbc_driver("ODBC Driver 18 for SQL Server", ["ODBC Driver 18 for SQL Server"]) is None


MS = "[Microsoft][ODBC Driver 18 for SQL Server]"
LOGIN = f"[28000] {MS}[SQL Server]Login failed for user 'sa'. (18456) (SQLDriverConnect)"
NO_LIB = (
    "[01000] [unixODBC][Driver Manager]Can't open lib 'ODBC Driver 18 for SQL Server' : file not found (0) "
    "(SQLDriverConnect)"
)
NO_DSN = (
    "[IM002] [unixODBC][Driver Manager]Data source name not found and no default driver specified (0) "
    "(SQLDriverConnect)"
)
TCP = "[08001] [Microsoft][ODBC Driver 18 for SQL Server]TCP Provider: Error code 0x2749 (10057) (SQLDriverConnect)"
TIMEOUT = "[HYT00] [Microsoft][ODBC Driver 18 for SQL Server]Login timeout expired (0) (SQLDriverConnect)"
CERT = (
    "[08001] [Microsoft][ODBC Driver 18 for SQL Server]SSL Provider: [error:0A000086:SSL routines::certificate "
    "verify failed:self-signed certificate] (-1) (SQLDriverConnect)"
)
MISSING = (
    "[42S02] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Invalid object name 'nope'. (208) (SQLExecDirectW)"
)
DEADLOCK = (
    "[40001] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Transaction (Process ID 52) was deadlocked (1205)"
)
ORDER_BY = (
    "[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]The ORDER BY clause is invalid in views, inline "
    "functions, derived tables, subqueries, and common table expressions, unless TOP, OFFSET or FOR XML is also "
    "specified. (1033) (SQLExecDirectW)"
)


@pytest.mark.parametrize(
    ("state", "message", "error", "hint"),
    [
        ("28000", LOGIN, FatalError, "check the user and password (ETL_CONN_CRM / ETL_CONN_CRM_PASSWORD)"),
        ("01000", NO_LIB, FatalError, "the ODBC driver named in the URL is missing; install it"),
        ("IM002", NO_DSN, FatalError, "apt-get install unixodbc"),
        ("08001", TCP, TransientError, "check that the server is running and reachable"),
        ("HYT00", TIMEOUT, TransientError, "check that the server is running and reachable"),
        ("08001", CERT, FatalError, "TrustServerCertificate=yes"),
        ("42S02", MISSING, FatalError, "check the table and column names"),
        ("40001", DEADLOCK, TransientError, "reachable"),
        ("42000", ORDER_BY, FatalError, "remove ORDER BY from the query"),
    ],
)
def test_odbc_errors_are_translated_with_a_hint(state: str, message: str, error: type[Exception], hint: str) -> None:
    connector = _connector()
    with pytest.raises(error) as caught:
        with connector.translate_errors("connect"):
            raise _wrapped(state, message)
    text = str(caught.value)
    assert text.startswith("SQL Server connection 'crm' (mssql://sa:***@db.example:1433/sales?")
    assert message in text and hint in text
    assert "Pw-1-secret" not in text
    assert isinstance(caught.value.__cause__, DBAPIError)


def test_unrecognised_errors_keep_the_generic_translation() -> None:
    assert classify(OdbcError("42000", "[42000] Incorrect syntax near 'FORM'. (102) (SQLExecDirectW)")) is None
    assert classify(ValueError("not an ODBC error")) is None
    with pytest.raises(FatalError, match="query failed: .*Incorrect syntax near 'FORM'"):
        with _connector().translate_errors("query"):
            raise _wrapped("42000", "[42000] Incorrect syntax near 'FORM'. (102) (SQLExecDirectW)")


def test_missing_unixodbc_is_a_fatal_error_naming_it() -> None:
    """On this machine libodbc.so.2 is absent, so importing pyodbc fails for real; elsewhere the ODBC
    driver named in the URL is missing instead. Either way check() names the missing piece."""
    connector = _connector(URL.replace("ODBC+Driver+18", "ODBC+Driver+99"))
    with pytest.raises(FatalError) as caught:
        connector.check()
    text = str(caught.value)
    assert "unixODBC" in text or "'ODBC Driver 99 for SQL Server' is not installed" in text
    assert "msodbcsql18" in text and "Pw-1-secret" not in text
