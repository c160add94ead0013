"""A merge into PostgreSQL picks its statement from the target's indexes and the change's share of the table:
``INSERT ... ON CONFLICT`` on a unique index of exactly the keys when the staged rows are a small share,
one ``MERGE`` otherwise. Both leave the same rows, and NULL or repeated keys fail both the same way."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from connectors import open_connector
from connectors.base import Connector, RowStream, TableName
from script_factory.config import Strategy
from script_factory.load_strategies import LoadPlan, load
from script_factory.window import Window
from utilities.errors import FatalError
from utilities.progress import Progress
from utilities.secrets import Secret

ON_CONFLICT, MERGE = "INSERT ... ON CONFLICT", "one MERGE"
BIG = 3000  # rows in the target: a handful of staged rows is a small share of it
WINDOW = Window(start=datetime(2024, 1, 1), end=datetime(2025, 1, 1), filtered=True, start_reason="test")
CHANGE = [
    (2, "two, changed\nsecond line", datetime(2024, 6, 1)),
    (7, None, datetime(2024, 6, 2)),
    (BIG + 1, "new", datetime(2024, 6, 3)),
    (BIG + 2, "new ✓ 'quoted'", datetime(2024, 6, 4)),
]


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    yield engine
    engine.dispose()


@pytest.fixture
def warehouse(pg_url: str, tmp_path: Path) -> Iterator[Connector]:
    connector = open_connector("warehouse", Secret(pg_url), tmp_path)
    yield connector
    connector.close()


def make_table(engine: Engine, ddl: str, rows: int = BIG) -> list[tuple[Any, ...]]:
    """``items`` from ``ddl`` holding ``rows`` rows (id 1..rows); returns them."""
    with engine.begin() as conn:
        conn.execute(text(ddl))
        conn.execute(
            text(
                "INSERT INTO items (id, name, updated_at) "
                "SELECT g, 'row ' || g, timestamp '2024-01-01' + g * interval '1 minute' FROM generate_series(1, :n) g"
            ),
            {"n": rows},
        )
    return table_rows(engine)


def table_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, name, updated_at FROM items ORDER BY id"))]


def merge(warehouse: Connector, rows: list[tuple[Any, ...]], keys: tuple[str, ...] = ("id",)) -> None:
    plan = LoadPlan(TableName("items"), Strategy.MERGE, keys, "updated_at", WINDOW)
    stream = RowStream(["id", "name", "updated_at"], iter([rows]))
    load(warehouse, stream, plan, Progress("test", 3600))


def merged(before: list[tuple[Any, ...]], change: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(({r[0]: r for r in before} | {r[0]: r for r in change}).values())


def statement_used(caplog: pytest.LogCaptureFixture) -> str:
    lines = [r.getMessage() for r in caplog.records if r.name == "connectors.postgresql"]
    assert len(lines) == 1, lines
    return ON_CONFLICT if ON_CONFLICT in lines[0] else MERGE


@pytest.mark.parametrize(
    ("ddl", "keys", "statement"),
    [
        ("CREATE TABLE items (id integer PRIMARY KEY, name text, updated_at timestamp)", ("id",), ON_CONFLICT),
        ("CREATE TABLE items (id integer, name text, updated_at timestamp)", ("id",), MERGE),
        (
            "CREATE TABLE items (id integer NOT NULL, name text, updated_at timestamp); "
            "CREATE UNIQUE INDEX items_id ON items (id) INCLUDE (name)",
            ("id",),
            ON_CONFLICT,
        ),
        (  # a partial unique index cannot be ON CONFLICT's arbiter without its predicate
            "CREATE TABLE items (id integer, name text, updated_at timestamp); "
            "CREATE UNIQUE INDEX items_id ON items (id) WHERE id > 0",
            ("id",),
            MERGE,
        ),
        (  # nor can a deferrable constraint
            "CREATE TABLE items (id integer, name text, updated_at timestamp, UNIQUE (id) DEFERRABLE)",
            ("id",),
            MERGE,
        ),
        (  # the key is wider than the primary key: no unique index on exactly the keys
            "CREATE TABLE items (id integer PRIMARY KEY, name text, updated_at timestamp)",
            ("id", "updated_at"),
            MERGE,
        ),
        (
            "CREATE TABLE items (id integer, name text, updated_at timestamp, PRIMARY KEY (updated_at, id))",
            ("id", "updated_at"),
            ON_CONFLICT,
        ),
    ],
    ids=["primary-key", "no-index", "unique-include", "partial-unique", "deferrable", "wider-keys", "composite"],
)
def test_each_target_shape_merges_updates_and_inserts(
    engine: Engine,
    warehouse: Connector,
    caplog: pytest.LogCaptureFixture,
    ddl: str,
    keys: tuple[str, ...],
    statement: str,
) -> None:
    before = make_table(engine, ddl)
    change = CHANGE if keys == ("id",) else [(2, "two, changed", before[1][2]), *CHANGE[2:]]

    with caplog.at_level(logging.INFO):
        merge(warehouse, change, keys)

    assert statement_used(caplog) == statement
    assert table_rows(engine) == merged(before, change)


def test_a_change_that_is_a_large_share_of_the_table_merges_with_one_merge(
    engine: Engine, warehouse: Connector, caplog: pytest.LogCaptureFixture
) -> None:
    before = make_table(engine, "CREATE TABLE items (id integer PRIMARY KEY, name text, updated_at timestamp)", 10)

    with caplog.at_level(logging.INFO):
        merge(warehouse, CHANGE)

    assert statement_used(caplog) == MERGE
    assert table_rows(engine) == merged(before, CHANGE)


def test_quoted_mixed_case_names_merge_on_the_key_index(
    engine: Engine, warehouse: Connector, caplog: pytest.LogCaptureFixture
) -> None:
    with engine.begin() as conn:
        conn.execute(text('CREATE TABLE items ("Id" integer PRIMARY KEY, "Name" text, updated_at timestamp)'))
        conn.execute(
            text("INSERT INTO items SELECT g, 'row ' || g, timestamp '2024-01-01' FROM generate_series(1, :n) g"),
            {"n": BIG},
        )
    plan = LoadPlan(TableName("items"), Strategy.MERGE, ("id",), "updated_at", WINDOW)
    rows = [(1, "one, changed", datetime(2024, 6, 1)), (BIG + 1, "new", datetime(2024, 6, 2))]

    with caplog.at_level(logging.INFO):
        load(warehouse, RowStream(["Id", "Name", "updated_at"], iter([rows])), plan, Progress("test", 3600))

    assert statement_used(caplog) == ON_CONFLICT
    with engine.connect() as conn:
        got = conn.execute(
            text('SELECT "Id", "Name" FROM items WHERE "Id" IN (1, 2, :new) ORDER BY 1'), {"new": BIG + 1}
        )
        assert [tuple(r) for r in got] == [(1, "one, changed"), (2, "row 2"), (BIG + 1, "new")]


@pytest.mark.parametrize("primary_key", [True, False], ids=["primary-key", "no-index"])
def test_null_and_repeated_keys_fail_the_same_way_and_write_nothing(
    engine: Engine, warehouse: Connector, primary_key: bool
) -> None:
    before = make_table(
        engine,
        f"CREATE TABLE items (id integer {'PRIMARY KEY' if primary_key else ''}, name text, updated_at timestamp)",
    )
    nulls = [*CHANGE, (None, "no key", datetime(2024, 6, 5)), (None, "no key", datetime(2024, 6, 6))]
    twice = [*CHANGE, (2, "again", datetime(2024, 6, 5)), (BIG + 1, "again", datetime(2024, 6, 6))]

    with pytest.raises(FatalError, match=r"2 row\(s\) have a NULL key \(id\); nothing was written"):
        merge(warehouse, nulls)
    with pytest.raises(FatalError) as caught:
        merge(warehouse, twice)

    assert f"same key more than once (e.g. id=2; id={BIG + 1})" in str(caught.value)
    assert table_rows(engine) == before
