"""BigQuery through the command line: --check, --dry-run, runs from BigQuery into the warehouse and
from a SQLite source into BigQuery, all against the local fake through the real client."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.bigquery_server import FakeBigQuery, running

PROJECT = "bq_demo"


@pytest.fixture
def fake() -> Iterator[FakeBigQuery]:
    with running() as server:
        server.execute("CREATE SCHEMA ds")
        server.execute("CREATE TABLE ds.items (id BIGINT, name VARCHAR, amount DECIMAL(12,2), updated_at TIMESTAMP)")
        server.execute(
            "INSERT INTO ds.items VALUES (1, 'alpha', 10.50, '2024-01-01 10:00:00'), "
            "(2, 'beta', 20.00, '2024-01-02 10:00:00'), (3, NULL, 0, '2024-01-03 10:00:00')"
        )
        yield server


@pytest.fixture
def project(etl_home: Path, fake: FakeBigQuery, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project loading ds.items from BigQuery into the embedded SQLite warehouse."""
    folder = etl_home / "customer_code" / PROJECT
    (folder / "sql").mkdir(parents=True)
    (folder / "sql" / "items.sql").write_text(
        "-- items changed in the window (the runner adds the window on updated_at)\n"
        "SELECT id, name, amount, updated_at FROM `ds`.`items` WHERE :load_type IN ('I', 'F')\n",
        encoding="utf-8",
    )
    (folder / "project.yml").write_text(
        textwrap.dedent(
            f"""\
            project: {PROJECT}
            connections:
              bq:
            incremental:
              initial_start: 2023-01-01
            ddl:
              - {PROJECT}/001_items.sql
            tables:
              - target: items
                source: {{connection: bq, query: sql/items.sql}}
                strategy: merge
                keys: [id]
                cursor: updated_at
                chunk_size: 2
            """
        ),
        encoding="utf-8",
    )
    (etl_home / "warehouse" / PROJECT).mkdir()
    (etl_home / "warehouse" / PROJECT / "001_items.sql").write_text(
        "CREATE TABLE IF NOT EXISTS items "
        "(id BIGINT PRIMARY KEY, name TEXT, amount NUMERIC(12,2), updated_at TIMESTAMP);",
        encoding="utf-8",
    )
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)  # never a developer's real key
    monkeypatch.setenv("ETL_CONN_BQ", f"bigquery://{fake.project}/ds?location=EU")
    monkeypatch.setenv("ETL_CONN_BQ_API_ENDPOINT", fake.url)
    monkeypatch.setenv("ETL_CONN_BQ_TIMEOUT", "1")
    return folder


def warehouse_rows(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "metadata" / "warehouse.db") as conn:
        return conn.execute("SELECT id, name, amount, updated_at FROM items ORDER BY id").fetchall()


def test_check_reports_ok_with_the_driver_version(project: Path, fake: FakeBigQuery) -> None:
    result = run_cli("--project", PROJECT, "--check")
    assert result.code == 0, result.stdout + result.stderr
    assert (
        "OK      bq (BigQuery, source) bigquery://test-project/ds?location=EU: BigQuery test-project.ds"
        in result.stdout
    )
    assert "google-cloud-bigquery 3." in result.stdout


def test_check_fails_with_exit_2_when_access_is_denied(project: Path, fake: FakeBigQuery) -> None:
    fake.deny = True
    result = run_cli("--project", PROJECT, "--check")
    assert result.code == 2
    assert "FAILED  bq (BigQuery, source)" in result.stdout and "403 Access Denied" in result.stdout


def test_check_fails_with_exit_2_when_the_endpoint_is_unreachable(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("ETL_CONN_BQ_API_ENDPOINT", f"http://127.0.0.1:{closed}")
    result = run_cli("--project", PROJECT, "--check")
    assert result.code == 2
    assert "FAILED  bq (BigQuery, source)" in result.stdout
    assert "check that the server is running and reachable" in result.stdout


def test_dry_run_shows_the_query_with_named_parameters_and_calls_nothing(project: Path, fake: FakeBigQuery) -> None:
    result = run_cli("--project", PROJECT, "--dry-run")
    assert result.code == 0, result.stderr
    assert "WHERE @load_type IN ('I', 'F')" in result.stdout
    assert "src.`updated_at` > @window_start AND src.`updated_at` <= @window_end" in result.stdout
    assert "load_type='I' (STRING), window_start='2023-01-01' (STRING)" in result.stdout
    assert fake.requests == []


def test_full_then_incremental_runs_load_from_bigquery_into_the_warehouse(
    project: Path, fake: FakeBigQuery, etl_home: Path
) -> None:
    result = run_cli("--project", PROJECT, "--load-type", "F")
    assert result.code == 0, result.stdout + result.stderr
    assert [(r[0], r[1], Decimal(str(r[2]))) for r in warehouse_rows(etl_home)] == [
        (1, "alpha", Decimal("10.5")),
        (2, "beta", Decimal("20")),
        (3, None, Decimal("0")),
    ]
    fake.execute("UPDATE ds.items SET name = 'beta v2', updated_at = '2024-02-01 08:00:00' WHERE id = 2")
    fake.execute("INSERT INTO ds.items VALUES (4, 'delta', 4.00, '2024-02-02 09:30:00')")
    queries_before = len(fake.calls("POST", "/jobs"))
    result = run_cli("--project", PROJECT)
    assert result.code == 0, result.stdout + result.stderr
    rows = warehouse_rows(etl_home)
    assert [(r[0], r[1]) for r in rows] == [(1, "alpha"), (2, "beta v2"), (3, None), (4, "delta")]
    assert len(fake.calls("POST", "/jobs")) == queries_before + 1
    last_query = list(fake.jobs.values())[-1]["configuration"]["query"]
    start = next(p for p in last_query["queryParameters"] if p["name"] == "window_start")
    assert start["parameterValue"]["value"] == "2024-01-03 10:00:00"  # the previous run's data_max_date


def test_a_sqlite_source_loads_into_bigquery_as_a_target(project: Path, fake: FakeBigQuery, etl_home: Path) -> None:
    fake.execute("CREATE TABLE ds.orders (order_id BIGINT, note VARCHAR, total DECIMAL(12,2), updated_at TIMESTAMP)")
    fake.execute("INSERT INTO ds.orders VALUES (1, 'stale', 1.00, '2023-06-01 00:00:00')")
    source = etl_home / "metadata" / "shop.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE orders (order_id INTEGER, note TEXT, total NUMERIC, updated_at TEXT)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [(1, "first ✓", "12.50", "2024-01-01 08:00:00"), (2, None, "7.25", "2024-01-02 09:00:00")],
        )
    (project / "project.yml").write_text(
        textwrap.dedent(
            f"""\
            project: {PROJECT}
            connections:
              bq:
              shop:
                default: sqlite:///metadata/shop.db
            tables:
              - target: ds.orders
                target_connection: bq
                source: {{connection: shop, table: orders}}
                strategy: merge
                keys: [order_id]
                cursor: updated_at
            """
        ),
        encoding="utf-8",
    )
    result = run_cli("--project", PROJECT, "--load-type", "F")
    assert result.code == 0, result.stdout + result.stderr
    assert fake.execute("SELECT order_id, note, total, updated_at FROM ds.orders ORDER BY order_id") == [
        (1, "first ✓", Decimal("12.50"), datetime(2024, 1, 1, 8)),
        (2, None, Decimal("7.25"), datetime(2024, 1, 2, 9)),
    ]
    assert [row[0] for row in fake.execute("SELECT table_name FROM information_schema.tables ORDER BY 1")] == [
        "items",
        "orders",
    ]


def test_bigquery_cannot_be_the_warehouse(project: Path, fake: FakeBigQuery, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", f"bigquery://{fake.project}/ds")
    result = run_cli("--project", PROJECT, "--dry-run")
    assert result.code == 2
    assert "must be a SQL database" in result.stderr and "target_connection" in result.stderr
