"""Every load target passes the target contract: SQLite, the real PostgreSQL and MariaDB, Snowflake
(fakesnow with the real driver) and BigQuery (the real client against the local fake)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from connectors import open_connector
from tests.contract.target_contract import BEFORE, ContractTarget, TargetContract
from tests.fakes.bigquery_server import connector_for, running
from utilities.secrets import Secret

# fakesnow's own result conversion warns about a copy; it is the fake's business, not the connector's
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")


def normalized(rows: list[Any]) -> list[tuple[Any, ...]]:
    """(int, str, naive datetime) rows, sorted: SQLite gives text timestamps back."""
    out = []
    for ident, name, updated in rows:
        if isinstance(updated, str):
            updated = datetime.fromisoformat(updated)
        out.append((ident if ident is None else int(ident), name, updated.replace(tzinfo=None)))
    return sorted(out, key=lambda r: (r[0] is None, r[0] or 0, r[2]))


def sql_target(url: str, sa_url: str, ddl: str, home: Path) -> Iterator[ContractTarget]:
    engine = create_engine(sa_url)
    with engine.begin() as conn:
        conn.execute(text(ddl))
        conn.execute(
            text("INSERT INTO items (id, name, updated_at) VALUES (:id, :name, :updated_at)"),
            [{"id": i, "name": n, "updated_at": u} for i, n, u in BEFORE],
        )

    def rows() -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            return normalized(list(conn.execute(text("SELECT id, name, updated_at FROM items"))))

    connector = open_connector("warehouse", Secret(url), home)
    try:
        yield ContractTarget(connector, rows)
    finally:
        connector.close()
        engine.dispose()


class TestSqliteTarget(TargetContract):
    @pytest.fixture
    def target(self, tmp_path: Path) -> Iterator[ContractTarget]:
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        ddl = "CREATE TABLE items (id INTEGER, name VARCHAR(50), updated_at TIMESTAMP)"
        yield from sql_target(url, url, ddl, tmp_path)


class TestPostgresTarget(TargetContract):
    @pytest.fixture
    def target(self, pg_url: str, tmp_path: Path) -> Iterator[ContractTarget]:
        ddl = "CREATE TABLE items (id INTEGER, name VARCHAR(50), updated_at TIMESTAMP)"
        yield from sql_target(pg_url, pg_url.replace("postgresql://", "postgresql+psycopg://"), ddl, tmp_path)


class TestMariadbTarget(TargetContract):
    @pytest.fixture
    def target(self, mysql_url: str, tmp_path: Path) -> Iterator[ContractTarget]:
        ddl = "CREATE TABLE items (id INTEGER, name VARCHAR(50), updated_at DATETIME(6)) CHARACTER SET utf8mb4"
        sa_url = mysql_url.replace("mysql://", "mysql+pymysql://") + "?charset=utf8mb4"
        yield from sql_target(mysql_url, sa_url, ddl, tmp_path)


class TestSnowflakeTarget(TargetContract):
    @pytest.fixture
    def target(self, snowflake_url: str, tmp_path: Path) -> Iterator[ContractTarget]:
        connector = open_connector("snow", Secret(snowflake_url), tmp_path)

        def execute(sql: str, values: list[Any] | None = None) -> list[tuple[Any, ...]]:
            conn = connector.connect()  # type: ignore[attr-defined]
            try:
                cursor = conn.cursor()
                cursor.execute(sql, values or [])
                return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
            finally:
                conn.close()

        execute("CREATE TABLE items (id NUMBER(38,0), name VARCHAR, updated_at TIMESTAMP_NTZ)")
        for row in BEFORE:
            execute("INSERT INTO items (id, name, updated_at) VALUES (?, ?, ?)", list(row))
        try:
            yield ContractTarget(connector, lambda: normalized(execute("SELECT id, name, updated_at FROM items")))
        finally:
            connector.close()


class TestBigQueryTarget(TargetContract):
    @pytest.fixture
    def target(self, tmp_path: Path) -> Iterator[ContractTarget]:
        with running() as fake:
            fake.execute("CREATE SCHEMA ds")
            fake.execute("CREATE TABLE ds.items (id BIGINT, name VARCHAR, updated_at DATETIME)")
            for row in BEFORE:
                fake.execute("INSERT INTO ds.items VALUES (?, ?, ?)", list(row))
            connector = connector_for(fake, tmp_path)
            try:
                yield ContractTarget(connector, lambda: normalized(fake.execute("SELECT * FROM ds.items")))
            finally:
                connector.close()
