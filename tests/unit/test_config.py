"""project.yml validation: every error names the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from script_factory.config import Strategy, load_project, parse_project
from utilities.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
BASE = {
    "project": "p1",
    "connections": {"src": {"default": "sqlite:///metadata/src.db"}},
    "tables": [
        {
            "target": "t1",
            "source": {"connection": "src", "query": "sql/t1.sql"},
            "strategy": "merge",
            "keys": ["id"],
            "cursor": "updated_at",
        },
    ],
}


def parse(doc: dict, tmp_path: Path):
    folder = tmp_path / "p1"
    folder.mkdir(exist_ok=True)
    return parse_project(doc, folder, folder / "project.yml")


def error_of(doc: dict, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(doc, tmp_path)
    return str(caught.value)


def with_table(**changes: object) -> dict:
    table = {**BASE["tables"][0], **changes}
    return {**BASE, "tables": [table]}


def test_the_demo_project_is_valid() -> None:
    project = load_project(REPO / "customer_code" / "sales_demo")
    assert project.name == "sales_demo"
    assert [str(t.target) for t in project.tables] == ["dim_customer", "dim_product", "fact_order_lines"]
    assert project.tables[2].keys == ("order_id", "line_number")
    assert project.tables[2].chunk_size == 20000
    assert set(project.connections) == {"warehouse", "sales_src"}


def test_a_valid_minimal_project(tmp_path: Path) -> None:
    project = parse(BASE, tmp_path)
    assert project.tables[0].strategy is Strategy.MERGE
    assert project.warehouse == "warehouse"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({**BASE, "project": "other"}, "project: 'other' must equal the folder name 'p1'"),
        ({**BASE, "tabels": []}, "project.yml.tabels: unknown key (expected one of:"),
        (
            with_table(strategy="upsert"),
            "strategy: expected one of append, merge, replace, delete_insert, got 'upsert'",
        ),
        (with_table(keys=None), "keys: expected the key columns a merge matches on"),
        (
            with_table(strategy="append", cursor=None, keys=None),
            "cursor: expected the cursor column an append loads after",
        ),
        (with_table(strategy="delete_insert", cursor=None), "cursor: expected the cursor column whose window"),
        (with_table(cursor="updated at"), "cursor: expected a column name of letters, digits and '_'"),
        (with_table(target="a.b.c"), "target: expected a table name such as dim_customer or analytics.dim_customer"),
        (with_table(source={"connection": "nope", "query": "x.sql"}), "unknown connection 'nope'"),
        (with_table(source={"query": "x.sql"}), "source.connection: missing (it is required)"),
        (with_table(source={"connection": "src", "query": "../x.sql"}), "a path inside the project"),
        (with_table(chunk_size=0), "chunk_size: expected a whole number >= 1, got 0"),
        ({**BASE, "connections": {"src": {"default": "postgresql://u:p@h/db"}}}, "expected a sqlite:/// URL"),
        ({**BASE, "incremental": {"timezone": "Mars/Base"}}, "incremental.timezone: 'Mars/Base' is not a time zone"),
        ({**BASE, "incremental": {"lookback": "two hours"}}, "incremental.lookback: expected a duration"),
        ({**BASE, "checks": [{"kind": "sometimes", "table": "t1"}]}, "checks[0].kind: expected one of"),
        ({**BASE, "checks": [{"kind": "not_null", "table": "t1"}]}, "checks[0].columns: expected a non-empty list"),
        (
            {**BASE, "outputs": [{"name": "o", "query": "o.sql", "delete_after_run": "yes"}]},
            "outputs[0].delete_after_run: expected true or false",
        ),
        ({**BASE, "notify": {"email": {"to": ["not-an-address"]}}}, "notify.email.to: expected a list of e-mail"),
        ({**BASE, "tables": BASE["tables"] * 2}, "tables: 't1' appears twice"),
    ],
)
def test_errors_name_the_file_the_key_and_the_expectation(doc: dict, expected: str, tmp_path: Path) -> None:
    message = error_of(doc, tmp_path)
    assert expected in message
    assert str(tmp_path / "p1" / "project.yml") in message or "project.yml" in message
    assert "\n" not in message


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    folder = tmp_path / "p1"
    folder.mkdir()
    (folder / "project.yml").write_text("project: p1\ntables:\n  - target: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_project(folder)
    assert "invalid YAML" in str(caught.value) and "line" in str(caught.value)


def test_yaml_dates_are_accepted_as_initial_start(tmp_path: Path) -> None:
    doc = yaml.safe_load("initial_start: 2024-01-01")
    project = parse({**BASE, "incremental": doc}, tmp_path)
    assert project.initial_start.isoformat() == "2024-01-01T00:00:00"
