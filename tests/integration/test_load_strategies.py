"""Each load strategy on each SQL target (SQLite and the real PostgreSQL): what it writes, and that a
source failing half-way through leaves the target exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connectors import open_connector
from connectors.base import Chunk, RowStream, TableName
from connectors.sql import SqlConnector
from script_factory.config import Strategy
from script_factory.load_strategies import LoadPlan, load
from script_factory.window import Window
from utilities.errors import FatalError
from utilities.progress import Progress
from utilities.secrets import Secret

COLUMNS = ["id", "name", "updated_at"]
BEFORE = [
    (1, "one", datetime(2024, 1, 1)),
    (2, "two", datetime(2024, 1, 2)),
    (3, "three", datetime(2024, 1, 3)),
    (4, "four", datetime(2024, 1, 4)),
]
# The window's rows as the source has them now: 3 changed, 4 gone from the window, 5 new.
INCOMING = [(3, "three, changed", datetime(2024, 1, 3, 12)), (5, "five", datetime(2024, 1, 3, 18))]
WINDOW = Window(start=datetime(2024, 1, 2), end=datetime(2024, 1, 4), filtered=True, start_reason="test")
EXPECTED = {
    Strategy.APPEND: sorted([*BEFORE, *INCOMING]),
    Strategy.REPLACE: INCOMING,
    # rows with 2024-01-02 < updated_at <= 2024-01-04 (3 and 4) are replaced by the incoming ones
    Strategy.DELETE_INSERT: sorted([BEFORE[0], BEFORE[1], *INCOMING]),
    Strategy.MERGE: sorted([BEFORE[0], BEFORE[1], INCOMING[0], BEFORE[3], INCOMING[1]]),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SqlConnector, str]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        sa_url = url
    else:
        url = request.getfixturevalue("pg_url")
        sa_url = url.replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(sa_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INTEGER NOT NULL, name VARCHAR(50), updated_at TIMESTAMP)"))
        conn.execute(
            text("INSERT INTO items VALUES (:id, :name, :updated_at)"),
            [dict(zip(COLUMNS, row, strict=True)) for row in BEFORE],
        )
    engine.dispose()
    connector = open_connector("warehouse", Secret(url), tmp_path)
    assert isinstance(connector, SqlConnector)
    try:
        yield connector, sa_url
    finally:
        connector.close()


def rows_of(url: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT id, name, updated_at FROM items ORDER BY id, updated_at")).all()
    finally:
        engine.dispose()
    return [(r[0], r[1], r[2] if isinstance(r[2], datetime) else datetime.fromisoformat(r[2])) for r in found]


def plan(strategy: Strategy) -> LoadPlan:
    keys = ("id",) if strategy is Strategy.MERGE else ()
    return LoadPlan(TableName("items"), strategy, keys, "updated_at", WINDOW)


@pytest.mark.parametrize("strategy", list(Strategy), ids=[s.value for s in Strategy])
def test_each_strategy_writes_what_it_promises(target: tuple[SqlConnector, str], strategy: Strategy) -> None:
    connector, url = target
    stats = load(connector, RowStream(COLUMNS, iter([INCOMING])), plan(strategy), Progress("test"))

    assert rows_of(url) == EXPECTED[strategy]
    assert stats.rows == len(INCOMING)
    assert (stats.data_min, stats.data_max) == (INCOMING[0][2], INCOMING[1][2])


@pytest.mark.parametrize("strategy", list(Strategy), ids=[s.value for s in Strategy])
def test_a_source_failing_half_way_leaves_the_target_as_it_was(
    target: tuple[SqlConnector, str], strategy: Strategy
) -> None:
    connector, url = target

    def chunks() -> Iterator[Chunk]:
        yield INCOMING[:1]
        raise FatalError("the source connection dropped after the first chunk")

    with pytest.raises(FatalError, match="dropped after the first chunk"):
        load(connector, RowStream(COLUMNS, chunks()), plan(strategy), Progress("test"))

    assert rows_of(url) == BEFORE
    # the connector is still usable: the failed transaction left nothing behind (no staging table)
    load(connector, RowStream(COLUMNS, iter([INCOMING])), plan(strategy), Progress("test"))
    assert rows_of(url) == EXPECTED[strategy]
