"""Driver errors classified by code against the real servers: PostgreSQL (a statement timeout, a
terminated session, a deadlock, a syntax error), the same with the server speaking German, MariaDB (a
lock wait timeout, a statement time limit, a killed connection) and SQLite (a locked database).
Each goes through the connector's own translate_errors, as the runner sees it."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from sqlalchemy import text

import connectors.sqlite
from connectors import open_connector
from connectors.sql import SqlConnector
from utilities.errors import EtlError, FatalError, TransientError
from utilities.secrets import Secret

GERMAN = "de_DE.UTF-8"
LOCALE_FIX = f"localedef -i de_DE -f UTF-8 {GERMAN} (as root), then restart PostgreSQL if it was already running"


def sql_connector(name: str, url: str, home: Path) -> SqlConnector:
    connector = open_connector(name, Secret(url), home)
    assert isinstance(connector, SqlConnector)
    return connector


def failure(connector: SqlConnector, statements: Callable[[Any], object], action: str = "query") -> EtlError:
    """The translated error ``statements`` (run on a new connection) end with; fails if they do not."""
    with pytest.raises(EtlError) as caught, connector.translate_errors(action), connector.engine.connect() as conn:
        statements(conn)
    error = caught.value
    text_ = str(error)
    assert "\n" not in text_ and "sqlalche.me" not in text_ and "[SQL:" not in text_, text_
    assert text_.startswith(f"{connector.kind} connection {connector.name!r} ("), text_
    return error


def sqlstate(error: BaseException) -> str:
    return error.__cause__.orig.sqlstate  # type: ignore[union-attr]


def driver_text(error: BaseException) -> str:
    return str(error.__cause__.orig).strip().splitlines()[0]  # type: ignore[union-attr]


@pytest.fixture
def pg(pg_url: str, tmp_path: Path) -> Iterator[SqlConnector]:
    connector = sql_connector("wh", pg_url, tmp_path)
    with connector.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE pair (id INT PRIMARY KEY, v INT)")
        conn.exec_driver_sql("INSERT INTO pair VALUES (1, 0), (2, 0)")
    yield connector
    connector.close()


def session(language: str | None) -> Callable[[Any], None]:
    def set_up(conn: Any) -> None:
        if language:
            conn.exec_driver_sql(f"SET lc_messages = '{language}'")

    return set_up


def statement_timeout(language: str | None = None) -> Callable[[Any], None]:
    def run(conn: Any) -> None:
        session(language)(conn)
        conn.exec_driver_sql("SET statement_timeout = 1")
        conn.exec_driver_sql("SELECT pg_sleep(1)")

    return run


def terminated_session(language: str | None = None) -> Callable[[Any], None]:
    def run(conn: Any) -> None:
        session(language)(conn)
        conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")

    return run


def syntax_error(language: str | None = None) -> Callable[[Any], None]:
    def run(conn: Any) -> None:
        session(language)(conn)
        conn.exec_driver_sql("SELEC 1")

    return run


def deadlock(connector: SqlConnector, language: str | None = None) -> EtlError:
    """Two sessions that lock rows 1 and 2, then each wants the other's: PostgreSQL ends one of them."""
    errors: list[BaseException] = []
    both_locked = threading.Barrier(2, timeout=30)

    def worker(first: int, second: int) -> None:
        try:
            with connector.translate_errors("load"), connector.engine.begin() as conn:
                session(language)(conn)
                conn.exec_driver_sql("SET deadlock_timeout = '100ms'")
                conn.execute(text("UPDATE pair SET v = v + 1 WHERE id = :id"), {"id": first})
                both_locked.wait()
                conn.execute(text("UPDATE pair SET v = v + 1 WHERE id = :id"), {"id": second})
        except BaseException as exc:  # collected for the test's assertions
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(errors) == 1 and isinstance(errors[0], EtlError), errors
    return errors[0]


# -- PostgreSQL -----------------------------------------------------------------------------------


def test_postgres_statement_timeout_is_fatal(pg: SqlConnector) -> None:
    error = failure(pg, statement_timeout())
    assert isinstance(error, FatalError) and sqlstate(error) == "57014"
    assert "canceling statement due to statement timeout" in str(error) and "statement_timeout" in str(error)


def test_postgres_terminated_session_is_transient(pg: SqlConnector) -> None:
    error = failure(pg, terminated_session())
    assert isinstance(error, TransientError) and sqlstate(error) == "57P01"
    assert "terminating connection due to administrator command" in str(error)


def test_postgres_deadlock_is_transient(pg: SqlConnector) -> None:
    error = deadlock(pg)
    assert isinstance(error, TransientError) and sqlstate(error) == "40P01"
    assert "load failed: deadlock detected" in str(error)


def test_postgres_syntax_error_is_fatal(pg: SqlConnector) -> None:
    error = failure(pg, syntax_error())
    assert isinstance(error, FatalError) and sqlstate(error) == "42601"
    assert str(error).endswith("""query failed: syntax error at or near "SELEC"; check the query's SQL""")


def _require_german(pg: SqlConnector) -> None:
    """Skip (or, under CI, fail) when the server cannot speak German: the OS locale is missing."""
    from sqlalchemy.exc import DBAPIError

    try:
        with pg.engine.connect() as conn:
            conn.exec_driver_sql(f"SET lc_messages = '{GERMAN}'")
    except DBAPIError as exc:
        message = f"the server cannot use lc_messages {GERMAN} ({str(exc.orig).strip()}); run: {LOCALE_FIX}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_a_german_server_classifies_the_same_way(pg: SqlConnector) -> None:
    """Only codes are read, so messages in another language change nothing: the same failures, with
    the server's messages in German, get the same verdicts."""
    _require_german(pg)
    cases = [
        (lambda: failure(pg, statement_timeout()), lambda: failure(pg, statement_timeout(GERMAN)), FatalError),
        (lambda: failure(pg, syntax_error()), lambda: failure(pg, syntax_error(GERMAN)), FatalError),
        (lambda: failure(pg, terminated_session()), lambda: failure(pg, terminated_session(GERMAN)), TransientError),
        (lambda: deadlock(pg), lambda: deadlock(pg, GERMAN), TransientError),
    ]
    for english_case, german_case, expected in cases:
        english, german = english_case(), german_case()
        assert sqlstate(german) == sqlstate(english)
        assert driver_text(german) != driver_text(english)  # the server really answered in German
        assert driver_text(german) in str(german) and driver_text(english) not in str(german)
        assert type(english) is type(german) is expected, (str(english), str(german))


# -- MariaDB --------------------------------------------------------------------------------------


@pytest.fixture
def maria(mysql_url: str, tmp_path: Path) -> Iterator[SqlConnector]:
    connector = sql_connector("shop", mysql_url, tmp_path)
    with connector.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE pair (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
        conn.exec_driver_sql("INSERT INTO pair VALUES (1, 0), (2, 0)")
    yield connector
    connector.close()


def test_mariadb_lock_wait_timeout_is_transient(maria: SqlConnector, mysql_url: str) -> None:
    database = mysql_url.rsplit("/", 1)[1]
    holder = pymysql.connect(host="127.0.0.1", user="root", password="", database=database)
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("UPDATE pair SET v = 1 WHERE id = 1")

        def wait_for_the_row(conn: Any) -> None:
            conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")
            conn.exec_driver_sql("UPDATE pair SET v = 2 WHERE id = 1")

        error = failure(maria, wait_for_the_row, "load")
    finally:
        holder.rollback()
        holder.close()
    assert isinstance(error, TransientError) and error.__cause__.orig.args[0] == 1205  # type: ignore[union-attr]
    assert "load failed: ERROR 1205: Lock wait timeout exceeded" in str(error)


def test_mariadb_statement_time_limit_is_fatal_and_a_killed_connection_transient(maria: SqlConnector) -> None:
    limit = failure(
        maria, lambda conn: conn.exec_driver_sql("SET STATEMENT max_statement_time=0.1 FOR SELECT SLEEP(2)")
    )
    assert isinstance(limit, FatalError) and limit.__cause__.orig.args[0] == 1969  # type: ignore[union-attr]
    assert "max_statement_time" in str(limit)
    killed = failure(maria, lambda conn: conn.exec_driver_sql("KILL CONNECTION_ID()"))
    assert isinstance(killed, TransientError) and killed.__cause__.orig.args[0] in (1927, 2013)  # type: ignore[union-attr]
    missing = failure(maria, lambda conn: conn.exec_driver_sql("SELECT * FROM no_such_table"))
    assert isinstance(missing, FatalError) and "ERROR 1146" in str(missing) and "check the table" in str(missing)


# -- SQLite ---------------------------------------------------------------------------------------


def test_sqlite_locked_database_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connectors.sqlite, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (id INTEGER)")
    holder.execute("BEGIN IMMEDIATE")  # holds the write lock
    connector = sql_connector("lite", f"sqlite:///{path}", tmp_path)
    try:
        with pytest.raises(TransientError) as caught, connector.translate_errors("load"):
            with connector.engine.begin() as conn:  # BEGIN IMMEDIATE: waits 200 ms for the lock, then fails
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        holder.rollback()
        holder.close()
        connector.close()
    assert caught.value.__cause__.orig.sqlite_errorcode & 0xFF == 5  # type: ignore[union-attr]
    assert "load failed: database is locked" in str(caught.value)
