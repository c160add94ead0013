"""Driver errors classified by code, one code class at a time, with the drivers' own exception objects:
psycopg (SQLSTATE), PyMySQL (errno), sqlite3 (result code), connectorx (the numbers in its Rust text);
and the one helper every connector translates through. The same classes against the real servers are
in tests/integration/test_driver_errors_real.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pymysql
import pytest
from sqlalchemy.exc import DBAPIError, NoSuchTableError

from connectors import open_connector
from connectors.driver_errors import Verdict, first_line, translating
from connectors.mysql import classify as classify_mysql
from connectors.mysql import classify_connectorx
from connectors.postgresql import classify as classify_pg
from connectors.sql import SqlConnector
from connectors.sqlite import classify as classify_sqlite
from utilities.errors import ConfigError, FatalError, TransientError
from utilities.secrets import Secret

PG_URL = "postgresql://etl:Url-Secret-1@db.example:5432/sales"


def _wrapped(orig: Exception, invalidated: bool = False) -> Exception:
    """The DBAPIError SQLAlchemy raises around ``orig``, with its [SQL: ...] dump and sqlalche.me link."""
    return DBAPIError.instance("SELECT 1", {}, orig, type(orig), connection_invalidated=invalidated)


def _postgres(tmp_path: Path, variables: dict[str, str] | None = None) -> SqlConnector:
    connector = open_connector("wh", Secret(PG_URL), tmp_path, variables)
    assert isinstance(connector, SqlConnector)
    return connector


def _pg(sqlstate: str, message: str = "server message") -> psycopg.Error:
    return psycopg.errors.lookup(sqlstate)(message)


# -- PostgreSQL: SQLSTATE -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sqlstate",
    ["08000", "08003", "08006", "08001", "08004", "08P01", "40001", "40P01", "53300", "57P01", "57P02", "57P03"],
)
def test_postgres_connection_serialization_deadlock_and_shutdown_codes_are_transient(sqlstate: str) -> None:
    verdict = classify_pg(_pg(sqlstate))
    assert verdict is not None and verdict.transient, sqlstate
    assert verdict.text == "server message"


@pytest.mark.parametrize(
    ("sqlstate", "hint"),
    [
        ("57014", "statement_timeout"),  # statement timeout / query canceled: the same query would be canceled again
        ("42601", "check the query's SQL"),
        ("42P01", "check the table and column names"),
        ("42703", "check the table and column names"),
        ("28P01", "check the user and password (ETL_CONN_WH / ETL_CONN_WH_PASSWORD)"),
        ("3D000", "check the database name in ETL_CONN_WH"),
        ("42501", "GRANT"),
        ("23505", ""),  # unique violation: fatal, no hint
        ("22012", ""),  # division by zero
        ("53200", ""),  # out of memory: class 53 is not retried, only 53300
        ("55P03", ""),  # lock not available (lock_timeout): fatal, as 57014
    ],
)
def test_postgres_other_codes_are_fatal(sqlstate: str, hint: str) -> None:
    verdict = classify_pg(_pg(sqlstate), "wh")
    assert verdict is not None and not verdict.transient, sqlstate
    assert hint in verdict.hint if hint else verdict.hint == ""


def test_postgres_errors_without_a_code() -> None:
    """libpq gives no SQLSTATE when it cannot connect or loses the connection: OperationalError is
    transient; a client-side psycopg error without a code is left to the generic (fatal) rule."""
    refused = psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5439 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )
    verdict = classify_pg(refused)
    assert verdict is not None and verdict.transient
    assert verdict.text.endswith("failed: Connection refused")
    assert classify_pg(psycopg.OperationalError("consuming input failed: server closed the connection")).transient  # type: ignore[union-attr]
    assert classify_pg(psycopg.InterfaceError("the connection is closed")) is None
    assert classify_pg(ValueError("not a psycopg error")) is None


def test_postgres_translation_is_one_line_without_sqlalchemy_noise(tmp_path: Path) -> None:
    connector = _postgres(tmp_path)
    syntax = _pg("42601", 'syntax error at or near "FORM"\nLINE 1: SELECT * FORM t\n                 ^')
    with pytest.raises(FatalError) as caught, connector.translate_errors("query"):
        raise _wrapped(syntax)
    text = str(caught.value)
    assert text == (
        "PostgreSQL connection 'wh' (postgresql://etl:***@db.example:5432/sales): query failed: "
        'syntax error at or near "FORM"; check the query\'s SQL'
    )
    assert isinstance(caught.value.__cause__, DBAPIError) and caught.value.__cause__.orig is syntax

    assert connector.engine is not None  # created, not connected: raw driver errors are recognised from now on
    with pytest.raises(TransientError, match=r"read failed: deadlock detected; a deadlock") as raw:
        with connector.translate_errors("read"):
            raise _pg("40P01", "deadlock detected\nDETAIL:  Process 1 waits for ShareLock")  # raw, as from COPY
    assert "\n" not in str(raw.value)


def test_a_dropped_connection_is_transient_whatever_its_code(tmp_path: Path) -> None:
    """SQLAlchemy's connection_invalidated: the connection is gone, so a retry on a new one may work."""
    connector = _postgres(tmp_path)
    with pytest.raises(TransientError, match="the connection to the server was lost"):
        with connector.translate_errors("read"):
            raise _wrapped(psycopg.InterfaceError("the connection is closed"), invalidated=True)


# -- MySQL / MariaDB: PyMySQL errno ---------------------------------------------------------------


@pytest.mark.parametrize("errno", [1205, 1213, 2006, 2013, 2003, 1040, 1053, 1927])
def test_mysql_lock_deadlock_lost_connection_and_capacity_errnos_are_transient(errno: int) -> None:
    verdict = classify_mysql(pymysql.err.OperationalError(errno, "server message"))
    assert verdict is not None and verdict.transient
    assert verdict.text == f"ERROR {errno}: server message"


@pytest.mark.parametrize(
    ("exc", "hint"),
    [
        (pymysql.err.OperationalError(1045, "Access denied for user 'etl'@'h' (using password: YES)"), "password"),
        (pymysql.err.OperationalError(1049, "Unknown database 'nope'"), "check the database name in ETL_CONN_SHOP"),
        (pymysql.err.ProgrammingError(1146, "Table 'shop.nope' doesn't exist"), "check the table and column"),
        (pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax"), "check the query's SQL"),
        (pymysql.err.OperationalError(1969, "Query execution was interrupted (max_statement_time exceeded)"), "max_"),
        (pymysql.err.OperationalError(3024, "Query execution was interrupted, maximum statement time exceeded"), "max"),
        (pymysql.err.IntegrityError(1062, "Duplicate entry '1' for key 'PRIMARY'"), ""),
        (pymysql.err.DataError(1406, "Data too long for column 'name' at row 1"), ""),
    ],
)
def test_mysql_other_errnos_are_fatal(exc: Exception, hint: str) -> None:
    verdict = classify_mysql(exc, "shop")
    assert verdict is not None and not verdict.transient
    assert hint in verdict.hint if hint else verdict.hint == ""


def test_mysql_errors_without_an_errno_fall_to_the_generic_rule() -> None:
    assert classify_mysql(pymysql.err.ProgrammingError("not enough arguments for format string")) is None
    assert classify_mysql(psycopg.OperationalError("not a PyMySQL error")) is None


# -- connectorx: the numbers in the Rust mysql crate's text ---------------------------------------

# Texts connectorx 0.4.6 really raised (RuntimeError) against MariaDB 10.11.
CX_REFUSED = (
    "timed out waiting for connection: DriverError { Could not connect to address `127.0.0.1:3307': "
    "Connection refused (os error 111) }"
)
CX_ACCESS = (
    "timed out waiting for connection: MySqlError { ERROR 1045 (28000): Access denied for user "
    "'nouser'@'127.0.0.1' (using password: YES) }"
)
CX_MISSING = "MySqlError { ERROR 1146 (42S02): Table 'cxprobe.nope' doesn't exist }"


class PanicException(BaseException):
    """Stands for pyo3_runtime.PanicException (connectorx's Rust panics), which cannot be built here."""


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (RuntimeError(CX_REFUSED), True),
        (RuntimeError("MySqlError { ERROR 1213 (40001): Deadlock found when trying to get lock }"), True),
        (RuntimeError("MySqlError { ERROR 2013 (HY000): Lost connection to server during query }"), True),
        (RuntimeError(CX_ACCESS), False),  # the number inside the pool's "timed out" wins
        (RuntimeError(CX_MISSING), False),
        (RuntimeError("timed out waiting for connection"), False),  # no number: the narrow rule says fatal
        (PanicException("Could not retrieve `Option<NaiveDate>`: Couldn't convert the value"), False),
    ],
)
def test_connectorx_errors_are_classified_by_the_numbers_in_their_text(exc: BaseException, transient: bool) -> None:
    verdict = classify_connectorx(exc, "shop")
    assert verdict is not None and verdict.transient is transient
    if "1045" in str(exc):
        assert "check the user and password (ETL_CONN_SHOP / ETL_CONN_SHOP_PASSWORD)" in verdict.hint
    assert classify_connectorx(KeyError("a bug")) is None


# -- SQLite: result code --------------------------------------------------------------------------


def _sqlite_error(code: int, message: str) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code  # what the sqlite3 module sets on Python 3.11+
    return exc


@pytest.mark.parametrize(
    ("code", "transient"), [(5, True), (6, True), (517, True), (262, True), (1, False), (14, False)]
)
def test_sqlite_busy_and_locked_are_transient(code: int, transient: bool) -> None:
    verdict = classify_sqlite(_sqlite_error(code, "database is locked"))
    assert verdict is not None and verdict.transient is transient
    assert classify_sqlite(sqlite3.OperationalError("no code")) is None


# -- the helper -----------------------------------------------------------------------------------


def test_translating_passes_the_runs_own_errors_and_unrecognised_exceptions_through(tmp_path: Path) -> None:
    connector = _postgres(tmp_path)
    never = Verdict(FatalError, "never")
    for exc in (ConfigError("bad"), TransientError("again"), KeyError("a bug"), KeyboardInterrupt()):
        with pytest.raises(type(exc)) as caught, translating(connector, "query", lambda e: None):
            raise exc
        assert caught.value is exc
    with pytest.raises(KeyboardInterrupt), translating(connector, "query", lambda e: never):
        raise KeyboardInterrupt


def test_translating_masks_the_connections_secrets(tmp_path: Path) -> None:
    variables = {"ETL_CONN_WH_PASSWORD": "Setting-Secret-2"}
    connector = _postgres(tmp_path, variables)
    leaky = Verdict(TransientError, "auth Url-Secret-1 and Setting-Secret-2 leaked", "the hint")
    with pytest.raises(TransientError) as caught, translating(connector, "connect", lambda e: leaky):
        raise OSError("boom")
    assert str(caught.value) == (
        "PostgreSQL connection 'wh' (postgresql://etl:***@db.example:5432/sales): connect failed: "
        "auth *** and *** leaked; the hint"
    )


def test_non_driver_sqlalchemy_errors_are_fatal_without_the_background_link(tmp_path: Path) -> None:
    connector = _postgres(tmp_path)
    with pytest.raises(FatalError) as caught, connector.translate_errors("reflect"):
        raise NoSuchTableError("orders")
    assert str(caught.value).endswith("reflect failed: orders")
    assert first_line("boom (Background on this error at: https://sqlalche.me/e/20/e3q8)\n[SQL: SELECT 1]") == "boom"
