"""The SQL the BigQuery connector sends: quoting, :name -> @name, typed parameters, load scripts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from connectors import bigquery_sql as bq
from connectors.base import TableName
from connectors.bigquery import BigQueryConnector
from connectors.target import CheckKeys, MergeFromStage, WriteRows
from script_factory.config import Strategy
from script_factory.load_strategies import LoadPlan, operations
from script_factory.window import Window
from utilities.errors import ConfigError, FatalError


def test_quote_wraps_in_backticks_and_refuses_names_that_need_escaping() -> None:
    assert bq.quote("order-lines 2024") == "`order-lines 2024`"
    assert bq.table_path("my-project", "sales", "orders") == "`my-project`.`sales`.`orders`"
    for bad in ("a`b", "a\\b", "a\nb", ""):
        with pytest.raises(ConfigError):
            bq.quote(bad)


def test_colon_parameters_become_at_parameters_outside_strings_and_comments() -> None:
    sql = (
        "SELECT ':not_a_param', \"also :not\", '''triple :no''', `col:umn`, x::INT64 AS y -- :comment\n"
        "FROM t # :hash comment\n"
        "WHERE a > :start_date /* :block */ AND b <= :end_date AND c = @load_type AND d = @@project_id"
        " AND e = 'it\\'s :quoted' AND f = TIME '10:00:00';;"
    )
    text, names = bq.prepare_query(sql)
    assert names == ["start_date", "end_date", "load_type"]
    assert "a > @start_date" in text and "b <= @end_date" in text and "c = @load_type" in text
    assert "@@project_id" in text and "x::INT64" in text
    assert "':not_a_param'" in text and '"also :not"' in text and "'''triple :no'''" in text
    assert "`col:umn`" in text and "'it\\'s :quoted'" in text and "'10:00:00'" in text
    assert "comment" not in text and ":block" not in text
    assert not text.endswith(";")


def test_bind_keeps_used_parameters_and_names_an_unknown_one() -> None:
    params = bq.bind(["start_date"], {"start_date": datetime(2024, 1, 2, 3, 4, 5), "unused": 1}, "q")
    assert params == [bq.Parameter("start_date", "STRING", "2024-01-02 03:04:05")]
    with pytest.raises(FatalError, match="unknown parameter.*typo.*:start_date"):
        bq.bind(["typo"], {"start_date": None}, "q")


def test_parameters_are_typed_by_value_and_dates_use_coercible_text() -> None:
    assert bq.parameter("n", 5) == bq.Parameter("n", "INT64", 5)
    assert bq.parameter("b", True) == bq.Parameter("b", "BOOL", True)
    assert bq.parameter("f", 1.5).kind == "FLOAT64"
    assert bq.parameter("d", Decimal("10.25")).kind == "NUMERIC"
    assert bq.parameter("d", Decimal("1e40")).kind == "BIGNUMERIC"
    assert bq.parameter("d", Decimal("0.0000000001")).kind == "BIGNUMERIC"
    assert bq.parameter("s", "F") == bq.Parameter("s", "STRING", "F")
    assert bq.parameter("none", None) == bq.Parameter("none", "STRING", None)
    assert bq.canonical_text(date(2024, 1, 31)) == "2024-01-31"
    assert bq.canonical_text(datetime(2024, 1, 31)) == "2024-01-31"  # midnight: also a valid DATE
    assert bq.canonical_text(datetime(2024, 1, 31, 8, 0)) == "2024-01-31 08:00:00"
    assert bq.canonical_text(datetime(2024, 1, 31, 8, 0, 0, 250)) == "2024-01-31 08:00:00.000250"
    plus_two = timezone(timedelta(hours=2))
    assert bq.canonical_text(datetime(2024, 1, 31, 10, 0, tzinfo=plus_two)) == "2024-01-31 08:00:00+00:00"
    assert bq.canonical_text(datetime(2024, 1, 31, tzinfo=UTC)) == "2024-01-31 00:00:00+00:00"


def test_a_windowed_query_wraps_the_project_sql_and_binds_the_window() -> None:
    text, names = bq.prepare_query("SELECT * FROM `ds`.`t` WHERE kind = :load_type")
    params = bq.bind(names, {"load_type": "I"}, "q")
    statement = bq.select_query(text, params, "updated_at", (datetime(2024, 1, 1), datetime(2024, 2, 1, 12)))
    assert statement.sql == (
        "SELECT * FROM (\nSELECT * FROM `ds`.`t` WHERE kind = @load_type\n) AS src\n"
        "WHERE src.`updated_at` > @window_start AND src.`updated_at` <= @window_end"
    )
    assert [(p.name, p.value) for p in statement.parameters] == [
        ("load_type", "I"),
        ("window_start", "2024-01-01"),
        ("window_end", "2024-02-01 12:00:00"),
    ]
    open_ended = bq.select_table("`p`.`d`.`t`", "id", (10, None))
    assert open_ended.sql == "SELECT * FROM `p`.`d`.`t`\nWHERE `id` > @window_start"
    assert open_ended.parameters == (bq.Parameter("window_start", "INT64", 10),)
    assert bq.select_table("`p`.`d`.`t`", "id", None).sql == "SELECT * FROM `p`.`d`.`t`"


@pytest.mark.parametrize(
    ("strategy", "delete"),
    [
        (Strategy.APPEND, None),
        (Strategy.REPLACE, "DELETE FROM T WHERE TRUE"),
        (Strategy.DELETE_INSERT, "DELETE FROM T WHERE `ts` > @window_start AND `ts` <= @window_end"),
        (
            Strategy.MERGE,
            "DELETE FROM T AS target WHERE EXISTS (SELECT 1 FROM S AS stage "
            "WHERE stage.`id` = target.`id` AND stage.`line` = target.`line`)",
        ),
    ],
)
def test_each_strategy_is_one_transaction_ending_in_one_insert(strategy: Strategy, delete: str | None) -> None:
    """The operations the engine decides for BigQuery, rendered as one transaction script."""
    window = Window(datetime(2024, 1, 1), datetime(2024, 1, 2), filtered=True, start_reason="test")
    plan = LoadPlan(TableName("T"), strategy, ("id", "line"), "ts", window)
    ops = [op for op in operations(plan, BigQueryConnector.capabilities) if not isinstance(op, WriteRows | CheckKeys)]
    script = bq.transaction([bq.operation_statement(op, "T", "S", ["id", "line", "ts"]) for op in ops])
    statements = script.sql.rstrip(";").split(";\n")
    insert = "INSERT INTO T (`id`, `line`, `ts`) SELECT `id`, `line`, `ts` FROM S"
    assert statements == ["BEGIN TRANSACTION", *([delete] if delete else []), insert, "COMMIT TRANSACTION"]
    if strategy is Strategy.DELETE_INSERT:
        assert [p.value for p in script.parameters] == ["2024-01-01", "2024-01-02"]
    else:
        assert script.parameters == ()


def test_an_operation_bigquery_does_not_run_is_refused() -> None:
    with pytest.raises(FatalError, match="MergeFromStage"):
        bq.operation_statement(MergeFromStage(("id",)), "T", "S", ["id"])


def test_key_checks_query_the_staging_table() -> None:
    assert bq.null_keys_query("S", ["a", "b"]).sql == "SELECT COUNT(*) AS n FROM S WHERE `a` IS NULL OR `b` IS NULL"
    assert bq.duplicate_keys_query("S", ["a"]).sql == (
        "SELECT `a` FROM S GROUP BY `a` HAVING COUNT(*) > 1 ORDER BY `a` LIMIT 3"
    )
