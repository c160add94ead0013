"""BigQuery as a load target: a load job into a staging table, then one transaction per strategy,
through the real google-cloud-bigquery client against the local fake (DuckDB runs the script)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.base import LoadStats, ReadRequest, RowStream, TableName
from script_factory.config import Strategy
from script_factory.load_strategies import LoadPlan, load
from script_factory.window import Window
from tests.fakes.bigquery_server import FakeBigQuery, connector_for, running
from utilities.errors import FatalError
from utilities.progress import Progress

COLUMNS = ["id", "name", "amount", "updated_at"]
EXISTING = [
    (1, "old one", Decimal("1.00"), datetime(2024, 1, 1, 9)),
    (2, "old two", Decimal("2.00"), datetime(2024, 1, 2, 9)),
    (3, "old three", Decimal("3.00"), datetime(2024, 1, 3, 9)),
]
INCOMING = [
    (2, "new two", Decimal("20.50"), datetime(2024, 1, 2, 12)),
    (4, "new four ✓", Decimal("40.25"), datetime(2024, 1, 4, 12)),
]
WINDOW = Window(datetime(2024, 1, 2), datetime(2024, 1, 3), filtered=True, start_reason="test")


@pytest.fixture
def fake() -> Iterator[FakeBigQuery]:
    with running() as server:
        server.execute("CREATE SCHEMA ds")
        server.execute(
            "CREATE TABLE ds.sales (id BIGINT, name VARCHAR NOT NULL, amount DECIMAL(12,2), updated_at TIMESTAMP)"
        )
        for row in EXISTING:
            server.execute("INSERT INTO ds.sales VALUES (?, ?, ?, ?)", list(row))
        yield server


def write(
    fake: FakeBigQuery,
    home: Path,
    strategy: Strategy,
    rows: list[tuple[Any, ...]],
    columns: list[str] = COLUMNS,
    keys: tuple[str, ...] = ("id",),
    table: str = "sales",
    chunk: int = 1,
) -> LoadStats:
    connector = connector_for(fake, home)
    chunks = iter([rows[i : i + chunk] for i in range(0, len(rows), chunk)])
    plan = LoadPlan(TableName(table), strategy, keys, "updated_at" if "updated_at" in columns else None, WINDOW)
    try:
        return load(connector, RowStream(columns, chunks), plan, Progress("test"))
    finally:
        connector.close()


def target_rows(fake: FakeBigQuery) -> list[tuple[Any, ...]]:
    return fake.execute("SELECT id, name, amount, updated_at FROM ds.sales ORDER BY id, updated_at")


def tables(fake: FakeBigQuery) -> list[str]:
    return [row[0] for row in fake.execute("SELECT table_name FROM information_schema.tables ORDER BY 1")]


def scripts(fake: FakeBigQuery) -> list[str]:
    return [
        job["configuration"]["query"]["query"]
        for job in fake.jobs.values()
        if "BEGIN TRANSACTION" in job["configuration"].get("query", {}).get("query", "")
    ]


def test_append_adds_the_rows_through_one_load_job_and_one_transaction(fake: FakeBigQuery, tmp_path: Path) -> None:
    stats = write(fake, tmp_path, Strategy.APPEND, INCOMING)
    assert target_rows(fake) == sorted(EXISTING + INCOMING, key=lambda row: (row[0], row[3]))
    assert (stats.rows, stats.data_min, stats.data_max) == (2, datetime(2024, 1, 2, 12), datetime(2024, 1, 4, 12))
    assert len(fake.calls("POST", "uploadType=resumable")) == 1
    assert len(scripts(fake)) == 1
    assert tables(fake) == ["sales"]  # the staging table is gone
    (stage,) = fake.created_tables
    assert stage["tableReference"]["tableId"].startswith("_etl_stage_sales_")
    expires = datetime.fromtimestamp(int(stage["expirationTime"]) / 1000, UTC)
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(days=1)  # expires if never dropped


def test_replace_leaves_only_the_new_rows(fake: FakeBigQuery, tmp_path: Path) -> None:
    write(fake, tmp_path, Strategy.REPLACE, INCOMING)
    assert target_rows(fake) == INCOMING


def test_replace_with_no_rows_empties_the_target_without_a_load_job(fake: FakeBigQuery, tmp_path: Path) -> None:
    stats = write(fake, tmp_path, Strategy.REPLACE, [])
    assert stats.rows == 0 and target_rows(fake) == []
    assert fake.calls("POST", "/upload/") == []


def test_delete_insert_replaces_only_the_window(fake: FakeBigQuery, tmp_path: Path) -> None:
    write(fake, tmp_path, Strategy.DELETE_INSERT, [INCOMING[0]])
    # the window is 2024-01-02 < updated_at <= 2024-01-03: the old row 2 goes, rows 1 and 3 stay
    assert target_rows(fake) == [EXISTING[0], INCOMING[0], EXISTING[2]]


def test_merge_replaces_matching_keys_and_inserts_the_others(fake: FakeBigQuery, tmp_path: Path) -> None:
    write(fake, tmp_path, Strategy.MERGE, INCOMING, chunk=2)
    assert target_rows(fake) == [EXISTING[0], INCOMING[0], EXISTING[2], INCOMING[1]]
    assert "DELETE FROM `test-project`.`ds`.`sales` AS target WHERE EXISTS" in scripts(fake)[0]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([*INCOMING, (None, "no key", Decimal("1"), datetime(2024, 1, 5))], "1 row.*NULL key"),
        ([*INCOMING, (4, "again", Decimal("1"), datetime(2024, 1, 5))], "same key more than once.*id=4"),
    ],
)
def test_merge_refuses_null_or_repeated_keys_and_writes_nothing(
    fake: FakeBigQuery, tmp_path: Path, rows: list[tuple[Any, ...]], message: str
) -> None:
    with pytest.raises(FatalError, match=message):
        write(fake, tmp_path, Strategy.MERGE, rows)
    assert target_rows(fake) == EXISTING
    assert scripts(fake) == []
    assert tables(fake) == ["sales"]


def test_a_failure_inside_the_transaction_leaves_the_target_as_it_was(fake: FakeBigQuery, tmp_path: Path) -> None:
    # name is REQUIRED in the target: the staging table takes the NULL, the INSERT after DELETE fails
    with pytest.raises(FatalError, match="'bq'.*load into sales failed"):
        write(fake, tmp_path, Strategy.REPLACE, [*INCOMING, (5, None, Decimal("5"), datetime(2024, 1, 5))])
    assert target_rows(fake) == EXISTING
    assert len(scripts(fake)) == 1
    assert tables(fake) == ["sales"]


def test_a_missing_target_or_an_unknown_column_is_fatal(fake: FakeBigQuery, tmp_path: Path) -> None:
    with pytest.raises(FatalError, match="target table missing does not exist.*create it first"):
        write(fake, tmp_path, Strategy.APPEND, INCOMING, table="missing")
    with pytest.raises(FatalError, match="column 'colour', which table sales does not have"):
        write(fake, tmp_path, Strategy.APPEND, [(9, "x", "red")], columns=["id", "name", "colour"])
    with pytest.raises(FatalError, match="column 'id': a datetime value cannot be written as INTEGER"):
        write(fake, tmp_path, Strategy.APPEND, [(datetime(2024, 1, 1), "x")], columns=["id", "name"], keys=())
    assert target_rows(fake) == EXISTING
    assert tables(fake) == ["sales"]


def test_every_type_survives_a_write_and_a_read_back(fake: FakeBigQuery, tmp_path: Path) -> None:
    fake.execute(
        "CREATE TABLE ds.kinds (i BIGINT, f DOUBLE, b BOOLEAN, d DATE, dt TIMESTAMP, ts TIMESTAMPTZ, "
        "n DECIMAL(38,9), s VARCHAR, raw BLOB, updated_at TIMESTAMP)"
    )
    row = (
        -(2**62),
        1.5,
        True,
        date(2024, 2, 29),
        datetime(2024, 2, 29, 23, 59, 58, 123456),
        datetime(2024, 2, 29, 12, 0, 0, 654321, tzinfo=UTC),
        Decimal("12345678901234567890.123456789"),
        'quote " backslash \\ newline \n tab \t ✓',
        b"\x00\xff bytes",
        datetime(2024, 1, 1),
    )
    columns = ["i", "f", "b", "d", "dt", "ts", "n", "s", "raw", "updated_at"]
    write(fake, tmp_path, Strategy.APPEND, [row, tuple(None for _ in row[:-1]) + (row[-1],)], columns, (), "kinds")
    connector = connector_for(fake, tmp_path)
    with connector.read(ReadRequest(table=TableName("kinds", "ds"))) as stream:
        back = sorted((r for chunk in stream for r in chunk), key=lambda r: r[0] is None)
    connector.close()
    assert back == [row, tuple(None for _ in row[:-1]) + (row[-1],)]


def test_a_large_load_is_streamed_in_several_upload_chunks(
    fake: FakeBigQuery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import google.cloud.bigquery.client as client_module

    monkeypatch.setattr(client_module, "_DEFAULT_CHUNKSIZE", 256 * 1024)  # the smallest chunk uploads allow
    rows = [(i, "x" * 2000, Decimal(i), datetime(2024, 1, 5)) for i in range(10, 310)]  # about 600 KiB
    stats = write(fake, tmp_path, Strategy.APPEND, rows, chunk=50)
    assert stats.rows == 300
    assert len(fake.calls("PUT", "upload_id=")) == 3
    assert fake.execute("SELECT count(*), sum(id) FROM ds.sales") == [(303, 6 + sum(range(10, 310)))]
