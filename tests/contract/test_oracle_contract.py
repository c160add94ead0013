"""Oracle passes the connector contract, and fetches its types as documented, against a real server.

Manual: no Oracle server runs on the CI machine, so this module is collected only when
ETL_TEST_ORACLE_URL is set (tests/contract/conftest.py). Recipe:

    docker run -d --name etl-oracle -p 1521:1521 -e ORACLE_PASSWORD=admin_pw \\
        -e APP_USER=etl -e APP_USER_PASSWORD=etl_pw gvenzl/oracle-free:23-slim
    docker logs -f etl-oracle          # wait for "DATABASE IS READY TO USE!"
    ETL_TEST_ORACLE_URL='oracle://etl:etl_pw@127.0.0.1:1521/?service_name=FREEPDB1' \\
        .venv/bin/python -m pytest -v tests/contract/test_oracle_contract.py
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors import open_connector
from connectors.base import ReadRequest, TableName
from connectors.oracle import OracleConnector
from tests.contract.connector_contract import ROWS, ConnectorContract, ContractSource
from utilities.secrets import Secret

URL = os.environ["ETL_TEST_ORACLE_URL"]  # read at collection, before the autouse fixture clears ETL_*


@pytest.fixture
def oracle(tmp_path: Path) -> Iterator[OracleConnector]:
    connector = open_connector("ora", Secret(URL), tmp_path)
    assert isinstance(connector, OracleConnector)
    yield connector
    connector.close()


@pytest.fixture
def table(oracle: OracleConnector) -> Iterator[str]:
    """A fresh table name (created by the test), dropped afterwards."""
    from sqlalchemy import inspect, text

    name = f"etl_test_{uuid.uuid4().hex[:10]}"
    yield name
    with oracle.engine.begin() as conn:
        if inspect(conn).has_table(name):
            conn.execute(text(f"DROP TABLE {name} PURGE"))


def _rows(connector: OracleConnector, request: ReadRequest) -> list[tuple[Any, ...]]:
    with connector.read(request) as stream:
        return [row for chunk in stream for row in chunk]


class TestOracleContract(ConnectorContract):
    @pytest.fixture
    def contract(self, oracle: OracleConnector, table: str) -> ContractSource:
        from sqlalchemy import text

        with oracle.engine.begin() as conn:
            conn.execute(
                text(
                    f"CREATE TABLE {table} (id NUMBER(10) PRIMARY KEY, name VARCHAR2(50 CHAR), "
                    f"amount NUMBER(12,2), updated_at TIMESTAMP)"
                )
            )
            conn.execute(
                text(f"INSERT INTO {table} VALUES (:id, :name, :amount, :updated_at)"),
                [{"id": i, "name": n, "amount": a, "updated_at": u} for i, n, a, u in ROWS],
            )

        def request(window: Any, chunk_size: int) -> ReadRequest:
            return ReadRequest(
                sql=f"SELECT id, name, amount, updated_at FROM {table} ORDER BY id",
                cursor="updated_at",
                filtered=window is not None,
                window_start=window[0] if window else None,
                window_end=window[1] if window else None,
                chunk_size=chunk_size,
            )

        return ContractSource(oracle, request, missing=ReadRequest(table=TableName("no_such_table")))


def test_types_arrive_as_documented(oracle: OracleConnector, table: str) -> None:
    from sqlalchemy import text

    with oracle.engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {table} (d DATE, tstz TIMESTAMP(6) WITH TIME ZONE, named TIMESTAMP WITH TIME ZONE, "
                f"ltz TIMESTAMP WITH LOCAL TIME ZONE, n NUMBER, n12 NUMBER(12,2), n10 NUMBER(10), f FLOAT, "
                f"bd BINARY_DOUBLE, c CLOB, nc NCLOB, b BLOB, r RAW(4), ym INTERVAL YEAR TO MONTH)"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO {table} VALUES (TO_DATE('2024-01-02 10:11:12', 'YYYY-MM-DD HH24:MI:SS'), "
                f"TIMESTAMP '2024-06-01 12:00:00.123456 +02:00', TIMESTAMP '2024-06-01 12:00:00 Europe/Berlin', "
                f"TIMESTAMP '2024-06-01 10:00:00 +00:00', 10.5, 20.25, 7, 0.1, 2.5, TO_CLOB('long text'), "
                f"TO_NCLOB('épsilon ✓'), HEXTORAW('CAFE'), HEXTORAW('DEADBEEF'), INTERVAL '1-2' YEAR TO MONTH)"
            )
        )

    (row,) = _rows(oracle, ReadRequest(sql=f"SELECT * FROM {table}"))

    assert row[0] == datetime(2024, 1, 2, 10, 11, 12) and row[0].tzinfo is None
    assert row[1] == datetime(2024, 6, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert row[2] == datetime(2024, 6, 1, 10, 0, 0, tzinfo=UTC)  # region names would fail raw in thin mode
    assert row[3] == datetime(2024, 6, 1, 10, 0, 0, tzinfo=UTC)
    assert row[4:8] == (Decimal("10.5"), Decimal("20.25"), 7, Decimal("0.1"))
    assert row[8] == 2.5
    assert row[9:13] == ("long text", "épsilon ✓", b"\xca\xfe", b"\xde\xad\xbe\xef")
    assert row[13] == "P1Y2M"


def test_window_start_keeps_its_fractional_seconds(oracle: OracleConnector, table: str) -> None:
    from sqlalchemy import text

    with oracle.engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (id NUMBER(10), changed TIMESTAMP(6))"))
        conn.execute(
            text(f"INSERT INTO {table} VALUES (:id, :changed)"),
            [
                {"id": 1, "changed": datetime(2024, 1, 1, 10, 0, 0, 400)},
                {"id": 2, "changed": datetime(2024, 1, 1, 10, 0, 0, 600)},
            ],
        )
    request = ReadRequest(
        sql=f"SELECT id, changed FROM {table}",
        cursor="changed",
        filtered=True,
        window_start=datetime(2024, 1, 1, 10, 0, 0, 500),
    )
    assert [row[0] for row in _rows(oracle, request)] == [2]
