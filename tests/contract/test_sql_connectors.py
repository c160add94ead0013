"""SQLite, PostgreSQL and MariaDB pass the connector contract against real databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors import open_connector
from connectors.base import ReadRequest, TableName
from tests.contract.connector_contract import ROWS, ConnectorContract, ContractSource
from utilities.secrets import Secret

DDL = {
    "sqlite": "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, amount NUMERIC(12,2), updated_at TEXT)",
    "postgresql": "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT, amount NUMERIC(12,2), updated_at TIMESTAMP)",
    "mysql": "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT, amount DECIMAL(12,2), updated_at DATETIME(6))",
}


def _seed(connector: Any, dialect: str) -> None:
    from sqlalchemy import text

    with connector.engine.begin() as conn:
        conn.execute(text(DDL[dialect]))
        conn.execute(
            text("INSERT INTO items VALUES (:id, :name, :amount, :updated_at)"),
            [
                {
                    "id": i,
                    "name": n,
                    "amount": str(a) if dialect == "sqlite" else a,
                    "updated_at": u.strftime("%Y-%m-%d %H:%M:%S") if dialect == "sqlite" else u,
                }
                for i, n, a, u in ROWS
            ],
        )


def _source(connector: Any) -> ContractSource:
    def request(window: Any, chunk_size: int) -> ReadRequest:
        return ReadRequest(
            sql="SELECT id, name, amount, updated_at FROM items ORDER BY id",
            cursor="updated_at",
            filtered=window is not None,
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
            chunk_size=chunk_size,
        )

    return ContractSource(connector, request, missing=ReadRequest(table=TableName("no_such_table")))


class TestSqliteContract(ConnectorContract):
    @pytest.fixture
    def contract(self, tmp_path: Path) -> Iterator[ContractSource]:
        connector = open_connector("lite", Secret(f"sqlite:///{tmp_path / 'src.db'}"), tmp_path)
        _seed(connector, "sqlite")
        yield _source(connector)
        connector.close()


class TestPostgresContract(ConnectorContract):
    @pytest.fixture
    def contract(self, pg_url: str, tmp_path: Path) -> Iterator[ContractSource]:
        connector = open_connector("pg", Secret(pg_url), tmp_path)
        _seed(connector, "postgresql")
        yield _source(connector)
        connector.close()


class TestMariadbContract(ConnectorContract):
    @pytest.fixture
    def contract(self, mysql_url: str, tmp_path: Path) -> Iterator[ContractSource]:
        connector = open_connector("maria", Secret(mysql_url), tmp_path)
        _seed(connector, "mysql")
        yield _source(connector)
        connector.close()
