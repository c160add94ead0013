"""SQL Server passes the connector contract, and fetches its types as documented, against a real server.

Manual: no SQL Server runs on the CI machine, so this module is collected only when ETL_TEST_MSSQL_URL
is set (tests/contract/conftest.py). It needs unixODBC and Microsoft's ODBC Driver 18 on the test
machine. Recipe:

    docker run -d --name etl-mssql -p 1433:1433 -e ACCEPT_EULA=Y \\
        -e MSSQL_SA_PASSWORD='Etl-pass-2024' mcr.microsoft.com/mssql/server:2022-latest
    ETL_TEST_MSSQL_URL='mssql://sa:Etl-pass-2024@127.0.0.1:1433/master?TrustServerCertificate=yes' \\
        .venv/bin/python -m pytest -v tests/contract/test_sqlserver_contract.py
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors import open_connector
from connectors.base import ReadRequest, TableName
from connectors.sqlserver import SqlServerConnector
from tests.contract.connector_contract import ROWS, ConnectorContract, ContractSource
from utilities.secrets import Secret

URL = os.environ["ETL_TEST_MSSQL_URL"]  # read at collection, before the autouse fixture clears ETL_*


@pytest.fixture
def mssql(tmp_path: Path) -> Iterator[SqlServerConnector]:
    connector = open_connector("mssql", Secret(URL), tmp_path)
    assert isinstance(connector, SqlServerConnector)
    yield connector
    connector.close()


@pytest.fixture
def table(mssql: SqlServerConnector) -> Iterator[str]:
    """A fresh table name (created by the test), dropped afterwards."""
    from sqlalchemy import text

    name = f"etl_test_{uuid.uuid4().hex[:10]}"
    yield name
    with mssql.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS dbo.{name}"))  # also when the test failed before creating it


def _rows(connector: SqlServerConnector, request: ReadRequest) -> list[tuple[Any, ...]]:
    with connector.read(request) as stream:
        return [row for chunk in stream for row in chunk]


class TestSqlServerContract(ConnectorContract):
    @pytest.fixture
    def contract(self, mssql: SqlServerConnector, table: str) -> ContractSource:
        from sqlalchemy import text

        with mssql.engine.begin() as conn:
            conn.execute(
                text(
                    f"CREATE TABLE dbo.{table} (id BIGINT PRIMARY KEY, name NVARCHAR(50), "
                    f"amount DECIMAL(12,2), updated_at DATETIME2)"
                )
            )
            conn.execute(
                text(f"INSERT INTO dbo.{table} VALUES (:id, :name, :amount, :updated_at)"),
                [{"id": i, "name": n, "amount": a, "updated_at": u} for i, n, a, u in ROWS],
            )

        def request(window: Any, chunk_size: int) -> ReadRequest:
            # No ORDER BY: SQL Server rejects it inside the derived table the window wraps (error 1033).
            return ReadRequest(
                sql=f"SELECT id, name, amount, updated_at FROM dbo.{table}",
                cursor="updated_at",
                filtered=window is not None,
                window_start=window[0] if window else None,
                window_end=window[1] if window else None,
                chunk_size=chunk_size,
            )

        return ContractSource(mssql, request, missing=ReadRequest(table=TableName("no_such_table", "dbo")))


def test_types_arrive_as_documented(mssql: SqlServerConnector, table: str) -> None:
    from sqlalchemy import text

    with mssql.engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE dbo.{table} (dt2 DATETIME2(7), dto DATETIMEOFFSET(7), dec DECIMAL(12,2), flag BIT, "
                f"body NVARCHAR(MAX), uid UNIQUEIDENTIFIER, bin VARBINARY(16))"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO dbo.{table} VALUES ('2024-01-02 10:11:12.1234567', "
                f"'2024-06-01 12:00:00.1234567 +02:00', 20.25, 1, N'épsilon ✓', "
                f"'6F9619FF-8B86-D011-B42D-00C04FC964FF', 0xCAFE)"
            )
        )

    (row,) = _rows(mssql, ReadRequest(sql=f"SELECT * FROM dbo.{table}"))

    assert row[0] == datetime(2024, 1, 2, 10, 11, 12, 123456) and row[0].tzinfo is None
    assert row[1] == datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert row[2:5] == (Decimal("20.25"), True, "épsilon ✓")
    assert str(row[5]).upper() == "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    assert row[6] == b"\xca\xfe"
