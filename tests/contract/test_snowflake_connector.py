"""Snowflake passes the connector contract as a source and loads with every strategy, atomically.

Everything runs against fakesnow's HTTP server through the real snowflake-connector-python:
statements, bound values, PUT, COPY INTO and transactions go over the wire as with Snowflake.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors import open_connector
from connectors.base import Chunk, LoadStats, ReadRequest, RowStream, TableName
from connectors.snowflake import SnowflakeConnector
from script_factory.config import Strategy
from script_factory.load_strategies import LoadPlan, load
from script_factory.window import Window
from tests.contract.connector_contract import ROWS, ConnectorContract, ContractSource
from utilities.errors import FatalError, TransientError
from utilities.progress import Progress
from utilities.secrets import Secret

ITEMS_DDL = "CREATE TABLE items (id NUMBER(38,0), name VARCHAR, amount NUMBER(12,2), updated_at TIMESTAMP_NTZ)"
INSERT = "INSERT INTO items (id, name, amount, updated_at) VALUES (?, ?, ?, ?)"

# fakesnow's own result conversion warns about a copy; it is the fake's business, not the connector's
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")


def execute(connector: SnowflakeConnector, *statements: tuple[str, list[Any]] | str) -> list[tuple]:
    """Run statements on a session of their own; the rows of the last one."""
    conn = connector.connect()
    try:
        cursor = conn.cursor()
        for statement in statements:
            sql, values = (statement, []) if isinstance(statement, str) else statement
            cursor.execute(sql, values)
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    finally:
        conn.close()


def seed(connector: SnowflakeConnector, rows: list[tuple]) -> None:
    """The items table with ``rows`` (amounts bound as text: fakesnow cannot bind a Decimal)."""
    execute(connector, ITEMS_DDL, *[(INSERT, [i, n, None if a is None else str(a), u]) for i, n, a, u in rows])


def items(connector: SnowflakeConnector) -> list[tuple]:
    return execute(connector, "SELECT id, name, amount, updated_at FROM items ORDER BY id")


@pytest.fixture
def snowflake(snowflake_url: str, tmp_path: Path) -> Iterator[SnowflakeConnector]:
    connector = open_connector("snow", Secret(snowflake_url), tmp_path)
    assert isinstance(connector, SnowflakeConnector)
    yield connector
    connector.close()


class TestSnowflakeContract(ConnectorContract):
    @pytest.fixture
    def contract(self, snowflake: SnowflakeConnector) -> ContractSource:
        seed(snowflake, ROWS)

        def request(window: Any, chunk_size: int) -> ReadRequest:
            return ReadRequest(
                sql="SELECT id, name, amount, updated_at FROM items -- :not_a_parameter\nORDER BY id",
                cursor="updated_at",
                filtered=window is not None,
                window_start=window[0] if window else None,
                window_end=window[1] if window else None,
                chunk_size=chunk_size,
            )

        return ContractSource(snowflake, request, missing=ReadRequest(table=TableName("no_such_table")))


# -- reading ----------------------------------------------------------------------------------


def test_a_source_table_is_read_with_the_window_bound(snowflake: SnowflakeConnector) -> None:
    seed(snowflake, ROWS)
    request = ReadRequest(
        table=TableName("items", "public"),
        cursor="updated_at",
        filtered=True,
        window_start=datetime(2024, 1, 3, 10),
        window_end=None,
    )
    sql, values = snowflake.select_for(request)
    assert '"PUBLIC"."ITEMS"' in sql and "?" in sql and "2024" not in sql
    assert values == [datetime(2024, 1, 3, 10)]
    with snowflake.read(request) as stream:
        assert stream.columns == ["id", "name", "amount", "updated_at"]
        assert sorted(row[0] for chunk in stream for row in chunk) == [4, 5]


def test_query_parameters_are_bound_in_order(snowflake: SnowflakeConnector) -> None:
    seed(snowflake, ROWS)
    request = ReadRequest(
        sql="SELECT id FROM items WHERE updated_at > :start_date AND COALESCE(name, '') <> :project AND id::text <> ''",
        params={"start_date": datetime(2024, 1, 3), "project": "delta", "unused": 1},
    )
    assert snowflake.select_for(request)[1] == [datetime(2024, 1, 3), "delta"]
    with snowflake.read(request) as stream:
        assert sorted(row[0] for chunk in stream for row in chunk) == [3, 5]


def test_a_parameter_the_run_does_not_provide_is_a_fatal_error(snowflake: SnowflakeConnector) -> None:
    with pytest.raises(FatalError, match=":region"):
        snowflake.select_for(ReadRequest(sql="SELECT 1 WHERE 'x' = :region", params={"project": "p"}))


# -- loading ----------------------------------------------------------------------------------

START, END = datetime(2024, 1, 2, 10), datetime(2024, 1, 4, 10)


def plan(strategy: Strategy, keys: tuple[str, ...] = (), window: Window | None = None) -> LoadPlan:
    window = window or Window(START, END, True, "test")
    return LoadPlan(TableName("items"), strategy, keys, "updated_at", window)


def stream(rows: list[tuple], chunk_size: int = 2, columns: list[str] | None = None) -> RowStream:
    chunks = [rows[i : i + chunk_size] for i in range(0, len(rows), chunk_size)]
    return RowStream(columns or ["id", "name", "amount", "updated_at"], iter(chunks))


def write(connector: SnowflakeConnector, rows: RowStream, load_plan: LoadPlan) -> LoadStats:
    return load(connector, rows, load_plan, Progress("test", interval=3600))


def test_append_adds_the_rows_and_reports_them(snowflake: SnowflakeConnector) -> None:
    seed(snowflake, ROWS[:2])
    stats = write(snowflake, stream(ROWS[2:]), plan(Strategy.APPEND))
    assert items(snowflake) == ROWS
    assert (stats.rows, stats.data_min, stats.data_max) == (3, ROWS[2][3], ROWS[4][3])


def test_replace_leaves_only_the_new_rows(snowflake: SnowflakeConnector) -> None:
    seed(snowflake, ROWS)
    stats = write(snowflake, stream([(9, "new", Decimal("1.00"), datetime(2025, 1, 1))]), plan(Strategy.REPLACE))
    assert items(snowflake) == [(9, "new", Decimal("1.00"), datetime(2025, 1, 1))]
    assert stats.rows == 1


def test_delete_insert_replaces_the_window_only(snowflake: SnowflakeConnector) -> None:
    seed(snowflake, ROWS)
    window_rows = [(3, "gamma", Decimal("3.00"), ROWS[2][3]), (6, "zeta", Decimal("6.00"), ROWS[3][3])]
    write(snowflake, stream(window_rows), plan(Strategy.DELETE_INSERT))
    # rows 3 and 4 were inside (START, END]; row 4 is gone, row 6 arrived; rows 1, 2 and 5 are untouched
    assert items(snowflake) == [ROWS[0], ROWS[1], window_rows[0], ROWS[4], window_rows[1]]


def test_merge_updates_matching_keys_and_inserts_the_others(snowflake: SnowflakeConnector) -> None:
    seed(snowflake, ROWS[:3])
    changed = (2, "BETA", Decimal("22.00"), datetime(2024, 2, 1))
    added = (7, "eta", Decimal("7.77"), datetime(2024, 2, 2))
    stats = write(snowflake, stream([changed, added]), plan(Strategy.MERGE, keys=("id",)))
    assert items(snowflake) == [ROWS[0], changed, ROWS[2], added]
    assert (stats.rows, stats.data_max) == (2, datetime(2024, 2, 2))


def test_values_of_other_types_are_converted_as_the_target_column_says(snowflake: SnowflakeConnector) -> None:
    """A SQLite source gives text timestamps, floats and text numbers; names differ in case."""
    execute(snowflake, ITEMS_DDL)
    rows = [("1", "a", 10.555, "2024-01-01 10:00:00"), (2, None, "-5.25", "2024-01-02T10:00:00.5")]
    write(snowflake, stream(rows, columns=["ID", "Name", "amount", "updated_at"]), plan(Strategy.APPEND))
    assert items(snowflake) == [
        (1, "a", Decimal("10.56"), datetime(2024, 1, 1, 10)),
        (2, None, Decimal("-5.25"), datetime(2024, 1, 2, 10, 0, 0, 500000)),
    ]


def test_an_empty_stream_appends_nothing(snowflake: SnowflakeConnector) -> None:
    seed(snowflake, ROWS[:1])
    stats = write(snowflake, stream([]), plan(Strategy.APPEND))
    assert (stats.rows, items(snowflake)) == (0, ROWS[:1])


def failing_stream(rows: list[tuple]) -> RowStream:
    def chunks() -> Iterator[Chunk]:
        yield rows
        raise TransientError("source connection lost mid-way")

    return RowStream(["id", "name", "amount", "updated_at"], chunks())


@pytest.mark.parametrize("strategy", [Strategy.REPLACE, Strategy.MERGE])
def test_a_stream_that_fails_mid_way_leaves_the_target_as_it_was(
    snowflake: SnowflakeConnector, strategy: Strategy
) -> None:
    seed(snowflake, ROWS)
    with pytest.raises(TransientError, match="mid-way"):
        rows = failing_stream([(1, "changed", Decimal("1.00"), datetime(2024, 3, 1))])
        write(snowflake, rows, plan(strategy, ("id",)))
    assert items(snowflake) == ROWS


def test_a_failure_inside_the_transaction_is_rolled_back(
    snowflake: SnowflakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window's DELETE has run when the next statement fails: ROLLBACK restores the rows."""
    import connectors.snowflake_load as snowflake_load
    from connectors.target import InsertFromStage

    original = snowflake_load.render
    monkeypatch.setattr(
        snowflake_load,
        "render",
        lambda op, *args: (
            ("SELECT * FROM no_such_table", []) if isinstance(op, InsertFromStage) else original(op, *args)
        ),
    )
    seed(snowflake, ROWS)
    with pytest.raises(FatalError, match="NO_SUCH_TABLE"):
        write(snowflake, stream([(3, "x", Decimal("0.00"), ROWS[2][3])]), plan(Strategy.DELETE_INSERT))
    assert items(snowflake) == ROWS


def test_merge_refuses_duplicate_keys_before_touching_the_target(snowflake: SnowflakeConnector) -> None:
    seed(snowflake, ROWS)
    twice = [(1, "a", Decimal("1.00"), START), (1, "b", Decimal("2.00"), END)]
    with pytest.raises(FatalError, match="same key more than once"):
        write(snowflake, stream(twice), plan(Strategy.MERGE, keys=("id",)))
    assert items(snowflake) == ROWS


def test_a_missing_target_table_is_named(snowflake: SnowflakeConnector) -> None:
    with pytest.raises(FatalError, match="target table items does not exist"):
        write(snowflake, stream(ROWS), plan(Strategy.APPEND))


def test_a_source_column_the_target_lacks_is_named(snowflake: SnowflakeConnector) -> None:
    execute(snowflake, ITEMS_DDL)
    rows = [(*row, "extra") for row in ROWS]
    with pytest.raises(FatalError, match="'colour'"):
        write(snowflake, stream(rows, columns=["id", "name", "amount", "updated_at", "colour"]), plan(Strategy.APPEND))


def test_every_common_column_type_arrives_as_written(snowflake: SnowflakeConnector) -> None:
    execute(
        snowflake,
        "CREATE TABLE wide (id NUMBER(38,0), ratio FLOAT, flag BOOLEAN, day DATE, at_time TIME, "
        "seen TIMESTAMP_TZ, doc VARIANT, raw BINARY, note VARCHAR(20), untouched VARCHAR)",
    )
    columns = ["id", "ratio", "flag", "day", "at_time", "seen", "doc", "raw", "note"]
    rows = [
        (
            1,
            0.25,
            True,
            date(2024, 2, 29),
            time(23, 59, 58),
            datetime(2024, 1, 1, 12, tzinfo=UTC),
            {"a": [1, 2]},
            b"\x00\xff",
            "x",
        ),
        (2, 3, 0, "2024-03-01", "08:00:00", "2024-01-02 00:00:00+00:00", "[true]", b"", 42),
    ]
    load_plan = LoadPlan(TableName("WIDE"), Strategy.APPEND, (), None, Window(START, END, True, "test"))
    write(snowflake, stream(rows, columns=columns), load_plan)
    got = execute(snowflake, "SELECT * FROM wide ORDER BY id")
    assert [row[:6] for row in got] == [
        (1, 0.25, True, date(2024, 2, 29), time(23, 59, 58), datetime(2024, 1, 1, 12, tzinfo=UTC)),
        (2, 3.0, False, date(2024, 3, 1), time(8, 0), datetime(2024, 1, 2, tzinfo=UTC)),
    ]
    assert [json.loads(row[6]) for row in got] == [{"a": [1, 2]}, [True]]
    assert [bytes(row[7]) for row in got] == [b"\x00\xff", b""]
    assert [row[8:] for row in got] == [("x", None), ("42", None)]
