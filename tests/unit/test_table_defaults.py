"""defaults: under tables:, pattern entries and continue_on_error in project.yml (config level, no database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.base import TableName
from script_factory.config import ProjectConfig, Strategy, TablePattern, parse_project
from utilities.errors import ConfigError


def parse(doc: dict[str, Any], tmp_path: Path) -> ProjectConfig:
    folder = tmp_path / "p"
    return parse_project({"project": "p", "connections": {"erp": {}, "crm": {}}, **doc}, folder, folder / "project.yml")


def error_of(doc: dict[str, Any], tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(doc, tmp_path)
    return str(caught.value)


DEFAULTS = {
    "strategy": "merge",
    "keys": ["id"],
    "cursor": "updated_at",
    "chunk_size": 500,
    "precheck": True,
    "source": {"connection": "erp"},
}


def test_every_table_takes_the_defaults_and_overrides_what_it_sets(tmp_path: Path) -> None:
    project = parse(
        {
            "defaults": DEFAULTS,
            "tables": [
                {"target": "orders", "source": {"table": "erp.orders"}},
                {"target": "customers", "source": {"connection": "crm", "table": "customers"}, "keys": ["cust_no"]},
                {"target": "regions", "source": {"table": "regions"}, "strategy": "replace", "cursor": None},
            ],
        },
        tmp_path,
    )
    orders, customers, regions = project.tables
    assert (orders.strategy, orders.keys, orders.cursor, orders.chunk_size, orders.precheck) == (
        Strategy.MERGE,
        ("id",),
        "updated_at",
        500,
        True,
    )
    assert orders.source.connection == "erp" and orders.source.table == TableName("orders", "erp")
    assert customers.source.connection == "crm" and customers.keys == ("cust_no",) and customers.cursor == "updated_at"
    # a null in a table drops the default: the key's own default again
    assert regions.strategy is Strategy.REPLACE and regions.cursor is None and regions.keys == ("id",)


def test_without_defaults_nothing_changes(tmp_path: Path) -> None:
    table = {"target": "t", "source": {"connection": "erp", "table": "t"}, "strategy": "replace"}
    project = parse({"tables": [table]}, tmp_path)
    assert project.tables[0].chunk_size == 50_000 and project.tables[0].keys == () and not project.continue_on_error


def test_a_bad_default_is_reported_once_at_defaults(tmp_path: Path) -> None:
    tables = [{"target": f"t{i}", "source": {"table": f"t{i}"}} for i in range(5)]
    message = error_of({"defaults": {**DEFAULTS, "strategy": "upsert"}, "tables": tables}, tmp_path)
    assert message.endswith(
        "project.yml: defaults.strategy: expected one of append, merge, replace, delete_insert, got 'upsert'"
    )


@pytest.mark.parametrize(
    ("defaults", "expected"),
    [
        (
            {"bogus": 1},
            "defaults.bogus: unknown key (expected one of: airflow, chunk_size, columns, continue_on_error, create, "
            "cursor,",
        ),
        ({"target": "x"}, "defaults.target: unknown key"),
        ({"source": {"connection": "erp", "query": "sql/a.sql"}}, "defaults.source: query says what one table reads"),
        ({"source": {"connection": "nope"}}, "defaults.source.connection: unknown connection 'nope'"),
        ({"chunk_size": 0}, "defaults.chunk_size: expected a whole number >= 1, got 0"),
        ({"keys": "id"}, "defaults.keys: expected a list"),
    ],
)
def test_defaults_are_validated_like_a_table(defaults: dict[str, Any], expected: str, tmp_path: Path) -> None:
    table = {"target": "t", "source": {"connection": "erp", "table": "t"}, "strategy": "replace"}
    assert expected in error_of({"defaults": defaults, "tables": [table]}, tmp_path)


def test_a_table_error_not_from_the_defaults_names_the_table(tmp_path: Path) -> None:
    tables = [{"target": "orders", "source": {"table": "orders"}, "strategy": "append", "cursor": None}]
    message = error_of({"defaults": DEFAULTS, "tables": tables}, tmp_path)
    assert "tables[0] (orders).cursor: expected the cursor column an append loads after" in message


def test_a_pattern_entry(tmp_path: Path) -> None:
    entry = {
        "source": {"tables": {"schema": "erp", "include": ["ord*"], "exclude": ["*_tmp"]}},
        "target_schema": "staging",
        "target_prefix": "erp_",
    }
    project = parse({"defaults": DEFAULTS | {"keys": None}, "tables": [entry]}, tmp_path)
    (table,) = project.tables
    assert table.source.connection == "erp" and table.keys == ()  # merge without keys: the primary keys, later
    assert table.source.pattern == TablePattern("erp", ("ord*",), ("*_tmp",), "staging", "erp_")
    assert str(table.target) == "staging.erp_*"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"target": "x", "source": {"connection": "erp", "tables": {"schema": "erp"}}, "strategy": "replace"},
            "tables[0] (x).target: a pattern entry (source.tables) names each target after its source table",
        ),
        (
            {"source": {"connection": "erp", "tables": {"includes": ["a*"]}}, "strategy": "replace"},
            "tables[0].source.tables.includes: unknown key (expected one of: exclude, include, schema)",
        ),
        (
            {"source": {"connection": "erp", "tables": {"include": []}}, "strategy": "replace"},
            "tables[0].source.tables.include: expected a non-empty list",
        ),
        (
            {"source": {"connection": "erp", "tables": {}}, "strategy": "append"},
            "tables[0].cursor: expected the cursor column an append loads after",
        ),
        (
            {"source": {"connection": "erp", "tables": {}, "query": "a.sql"}, "strategy": "replace"},
            "tables[0].source.query: unknown key (expected one of: connection, tables)",
        ),
    ],
)
def test_bad_pattern_entries(entry: dict[str, Any], expected: str, tmp_path: Path) -> None:
    assert expected in error_of({"tables": [entry]}, tmp_path)


def test_continue_on_error_from_the_project_and_per_table(tmp_path: Path) -> None:
    tables = [
        {"target": "a", "source": {"table": "a"}},
        {"target": "b", "source": {"table": "b"}, "continue_on_error": False},
    ]
    project = parse({"continue_on_error": True, "defaults": DEFAULTS, "tables": tables}, tmp_path)
    assert [t.continue_on_error for t in project.tables] == [True, False]
    project = parse({"defaults": {**DEFAULTS, "continue_on_error": True}, "tables": tables}, tmp_path)
    assert [t.continue_on_error for t in project.tables] == [True, False]


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"continue_on_error": True}, "project.yml: continue_on_error: publish: run publishes all"),
        ({"defaults": {**DEFAULTS, "continue_on_error": True}}, "project.yml: defaults.continue_on_error: publish"),
    ],
)
def test_continue_on_error_contradicts_publish_run(doc: dict[str, Any], key: str, tmp_path: Path) -> None:
    tables = [{"target": "a", "source": {"connection": "erp", "table": "a"}, "strategy": "replace"}]
    message = error_of({"defaults": DEFAULTS, "publish": "run", "tables": tables, **doc}, tmp_path)
    assert key in message and "drop continue_on_error or use publish: table" in message


def test_the_readme_examples_of_many_tables_are_valid(tmp_path: Path) -> None:
    import yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Many tables in one project")[1].split("\n### ")[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```yaml\n")[1:]]
    assert len(blocks) == 3
    for block in blocks:
        doc = yaml.safe_load(block)
        folder = tmp_path / doc["project"]
        project = parse_project(doc, folder, folder / "project.yml")
        assert project.tables and all(t.source.connection in project.connections for t in project.tables)
