"""``--check`` against the real MariaDB and PostgreSQL: a wrong password, a database that does not
exist and a port nothing listens on, each one FAILED line with what to check, exit code 2, and the
password never shown; a good connection is one OK line with the server version."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.projects import write_project

PROJECT = """
project: checked
connections:
  src: {}
tables:
  - {target: items, source: {connection: src, table: items}, strategy: replace}
"""
SECRET = "Not-the-Passw0rd"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"mysql://root:{SECRET}@127.0.0.1:3306/test", ["Access denied", "check the user and password"]),
        ("mysql://root@127.0.0.1:3306/no_such_db_for_etl", ["Unknown database", "check the database"]),
        ("postgresql://postgres@127.0.0.1:5432/no_such_db_for_etl", ["does not exist", "check the database"]),
        (
            f"postgresql://postgres:{SECRET}@127.0.0.1:{closed_port()}/postgres",
            ["Connection refused", "check that the server is running and reachable"],
        ),
    ],
    ids=["mariadb-wrong-password", "mariadb-unknown-database", "postgres-unknown-database", "postgres-closed-port"],
)
def test_a_failing_connection_is_one_line_with_what_to_check(
    etl_home: Path, monkeypatch: pytest.MonkeyPatch, url: str, expected: list[str]
) -> None:
    write_project(etl_home, "checked", PROJECT)
    monkeypatch.setenv("ETL_CONN_SRC", url)

    result = run_cli("--project", "checked", "--check")

    assert result.code == 2
    [line] = [line for line in result.stdout.splitlines() if line.split()[1:2] == ["src"]]
    assert line.startswith("FAILED  src (")
    for words in expected:
        assert words in line, line
    assert SECRET not in result.stdout + result.stderr
    warehouse = [line for line in result.stdout.splitlines() if line.split()[1:2] == ["warehouse"]]
    assert warehouse and warehouse[0].startswith("OK      warehouse (SQLite")


def test_a_good_connection_is_ok_with_the_server_version(
    etl_home: Path, monkeypatch: pytest.MonkeyPatch, mysql_url: str
) -> None:
    write_project(etl_home, "checked", PROJECT)
    monkeypatch.setenv("ETL_CONN_SRC", mysql_url)

    result = run_cli("--project", "checked", "--check")

    assert result.code == 0, result.stdout
    [line] = [line for line in result.stdout.splitlines() if line.split()[1:2] == ["src"]]
    assert line.startswith("OK      src (MySQL, source)") and "MariaDB 10." in line
