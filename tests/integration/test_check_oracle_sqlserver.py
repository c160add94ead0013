"""``--check`` against Oracle and SQL Server sources, with the failures this machine really has:
no Oracle server listening (a real thin-mode network error) and no ODBC stack for SQL Server."""

from __future__ import annotations

import ctypes.util
import socket
from pathlib import Path

import pytest

from tests.conftest import run_cli

PROJECT = """\
project: {name}
connections:
  erp: {{}}
tables:
  - target: items
    source: {{connection: erp, query: sql/items.sql}}
    strategy: append
    cursor: updated_at
"""


def _project(home: Path, name: str) -> str:
    folder = home / "customer_code" / name
    (folder / "sql").mkdir(parents=True)
    (folder / "project.yml").write_text(PROJECT.format(name=name), encoding="utf-8")
    (folder / "sql" / "items.sql").write_text("SELECT id, updated_at FROM items\n", encoding="utf-8")
    return name


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _line_for(output: str, connection: str) -> str:
    lines = [line for line in output.splitlines() if line.split()[1:2] == [connection]]
    assert len(lines) == 1, output
    return lines[0]


def test_unreachable_oracle_is_a_failed_line_with_the_connection_hint(
    etl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _project(etl_home, "ora_check")
    port = _closed_port()
    monkeypatch.setenv("ETL_CONN_ERP", f"oracle://scott:tiger-secret@127.0.0.1:{port}/?service_name=FREEPDB1")

    result = run_cli("--project", name, "--check")

    line = _line_for(result.stdout, "erp")
    assert result.code == 2
    assert line.startswith("FAILED  erp (Oracle, source)")
    assert "DPY-6005" in line and "Connection refused" in line  # the driver's own words, from thin mode
    assert "check that the server is running and reachable" in line
    assert "tiger-secret" not in result.stdout + result.stderr


def test_sqlserver_without_odbc_stack_names_the_missing_piece(etl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _project(etl_home, "mssql_check")
    # A driver name no machine has, so the case is "driver missing" whether or not unixODBC is installed.
    url = f"mssql://sa:Pw-secret-1@127.0.0.1:{_closed_port()}/master?driver=ODBC+Driver+99+for+SQL+Server"
    monkeypatch.setenv("ETL_CONN_ERP", url)

    result = run_cli("--project", name, "--check")

    line = _line_for(result.stdout, "erp")
    assert result.code == 2
    assert line.startswith("FAILED  erp (SQL Server, source)")
    if ctypes.util.find_library("odbc") is None:  # this machine: no libodbc.so.2 at all
        assert "cannot load the ODBC driver manager unixODBC" in line and "libodbc" in line
    else:  # unixODBC present, Microsoft's driver of that name absent
        assert "the ODBC driver 'ODBC Driver 99 for SQL Server' is not installed" in line
    assert "apt-get install unixodbc" in line and "msodbcsql18" in line
    assert "Pw-secret-1" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "oracle://scott:tiger@127.0.0.1:1/?service_name=FREEPDB1",
            "FROM (SELECT id, updated_at FROM items) src \n   WHERE src.updated_at > :window_start "
            "AND src.updated_at <= :window_end",
        ),
        (
            "sqlserver://sa:pw@127.0.0.1:1/master",
            "FROM (SELECT id, updated_at FROM items) AS src \n   WHERE src.updated_at > ? AND src.updated_at <= ?",
        ),
    ],
)
def test_dry_run_renders_the_dialect_sql_without_connecting(
    etl_home: Path, monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    name = _project(etl_home, "dry")
    monkeypatch.setenv("ETL_CONN_ERP", url)

    result = run_cli("--project", name, "--dry-run")

    assert result.code == 0, result.stderr
    assert expected in result.stdout
