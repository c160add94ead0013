"""project.yml validation: every error names the file, the key and what was expected."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import datetime, timedelta
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
        ({**BASE, "checks": [{"kind": "not_null", "table": "t1"}]}, "checks[0].columns: missing (it is required)"),
        (
            {**BASE, "checks": [{"kind": "not_null", "table": "t1", "columns": []}]},
            "checks[0].columns: expected a non-empty list",
        ),
        (
            {**BASE, "outputs": [{"name": "o", "query": "o.sql", "delete_after_run": "yes"}]},
            "outputs[0].delete_after_run: expected true or false",
        ),
        (
            {**BASE, "notify": {"email": {"to": ["not-an-address"]}}},
            "notify.email.to[0]: expected an e-mail address such as data-team@example.com, got 'not-an-address'",
        ),
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


def test_every_error_of_the_file_is_reported_at_once(tmp_path: Path) -> None:
    doc = {
        **with_table(strategy="upsert", chunk_size=0),
        "checks": [{"kind": "sometimes", "table": "t1"}],
        "schedule": "every morning",
    }
    lines = error_of(doc, tmp_path).splitlines()
    assert lines[0] == f"{tmp_path / 'p1' / 'project.yml'}: 4 errors:"
    assert lines[1:] == [
        "  tables[0] (t1).strategy: expected one of append, merge, replace, delete_insert, got 'upsert'",
        "  tables[0] (t1).chunk_size: expected a whole number >= 1, got 0",
        "  checks[0].kind: expected one of accepted_values, custom_sql, freshness, not_null, relationships, "
        "row_count, unique, got 'sometimes'",
        "  schedule: expected a cron expression such as \"0 6 * * *\", got 'every morning'",
    ]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({**BASE, "schedule": "0 6 * *"}, "schedule: expected a cron expression such as \"0 6 * * *\", got '0 6 * *'"),
        ({**BASE, "schedule": "61 * * * *"}, "schedule: expected a cron expression"),
        (
            with_table(bogus=1),
            "tables[0] (t1).bogus: unknown key (expected one of: airflow, chunk_size, columns, continue_on_error, "
            "create, cursor,",
        ),
        (
            {**BASE, "checks": [{"kind": "unique", "table": "t1", "columns": ["id"], "column": "id"}]},
            "checks[0].column: unknown key (expected one of: columns, error_if, kind, name, severity, table, warn_if)",
        ),
        ({**BASE, "connections": {"src": {}, "Erp": {}}}, "connections.Erp: expected a lower-case name"),
        ({**BASE, "connections": {"src": {"default": "postgresql://u:secret@h/db"}}}, "set ETL_CONN_SRC instead"),
        ({**BASE, "ddl": ["C:\\ddl.sql"]}, "ddl[0]: expected a path inside the project"),
        ({**BASE, "ddl": ["sql/../../x.sql"]}, "ddl[0]: expected a path inside the project"),
        ({**BASE, "notify": {"email": {"to": ["a@example.com"], "on": ["always"]}}}, "notify.email.on[0]: expected"),
        ({**BASE, "checks": [{"kind": "row_count", "table": "t1"}]}, "checks[0]: expected min, max or both"),
        ({**BASE, "outputs": [{"name": "o", "query": "o.sql", "upload": "lake"}]}, "outputs[0].upload: unknown conn"),
        ({**BASE, "incremental": {"timezone": "Europe"}}, "incremental.timezone: 'Europe' is not a time zone name"),
    ],
)
def test_more_errors_name_the_key_and_the_expectation(doc: dict, expected: str, tmp_path: Path) -> None:
    message = error_of(doc, tmp_path)
    assert expected in message
    assert "\n" not in message and "pydantic" not in message


def test_a_connection_url_with_credentials_is_not_echoed(tmp_path: Path) -> None:
    message = error_of({**BASE, "connections": {"src": {"default": "postgresql://u:secret@h/db"}}}, tmp_path)
    assert "secret" not in message and "got a postgresql:// URL" in message


def test_keys_written_without_a_value_take_their_default(tmp_path: Path) -> None:
    doc = yaml.safe_load("project: p1\nconnections:\n  src:\nretries:\nafter_load:\nnotify:\n")
    project = parse({**doc, "tables": BASE["tables"]}, tmp_path)
    assert project.retries.attempts == 1 and project.after_load == () and project.email is None
    assert project.connections["src"].default_url is None


def test_a_bare_on_key_in_notify_email_is_read_as_on(tmp_path: Path) -> None:
    notify = yaml.safe_load("email:\n  to: [data@example.com]\n  on: [success, failure]\n")
    assert True in notify["email"]  # what YAML 1.1 makes of it
    project = parse({**BASE, "notify": notify}, tmp_path)
    assert project.email is not None and project.email.on == frozenset({"success", "failure"})


def test_specs_keep_their_types_and_defaults(tmp_path: Path) -> None:
    doc = {
        **BASE,
        "warehouse": "dwh",
        "schedule": "0 6 * * 1-5",
        "checks": [
            {"kind": "freshness", "table": "s.t1", "column": "updated_at", "max_age": "2d"},
            {"kind": "row_count", "table": "t1", "min": 1},
        ],
        "outputs": [{"name": "o", "query": "sql\\o.sql"}],
    }
    project = parse(doc, tmp_path)
    freshness, row_count = project.checks
    assert (freshness.name, str(freshness.table), freshness.options) == (
        "freshness_t1",
        "s.t1",
        {"column": "updated_at", "max_age": timedelta(days=2)},
    )
    assert row_count.options == {"min": 1, "max": None}
    assert project.outputs[0].query_file == "sql/o.sql" and project.outputs[0].connection == "dwh"
    assert set(project.connections) == {"dwh", "src"} and project.schedule == "0 6 * * 1-5"
    assert project.tables[0].chunk_size == project.chunk_size == 50_000
    assert project.initial_start == datetime(1900, 1, 1) and project.lookback == timedelta(0)
    with pytest.raises(FrozenInstanceError):
        project.retries.attempts = 3  # type: ignore[misc]


def test_the_readme_example_is_valid(tmp_path: Path) -> None:
    block = (REPO / "README.md").read_text(encoding="utf-8").split("A complete, annotated `project.yml`")[1]
    doc = yaml.safe_load(block.split("```yaml\n", 1)[1].split("```", 1)[0])
    doc["connections"] |= {"snow": {}, "lake": {}}  # the example names them in passing
    project = load_or_parse(doc, tmp_path / "sales_demo")
    assert [c.name for c in project.checks][-1] == "no_orphans"


def load_or_parse(doc: dict, folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    return parse_project(doc, folder, folder / "project.yml")


def test_the_specs_validated_as_they_are_written_keep_the_fields_and_defaults_of_their_models() -> None:
    """config_specs.py repeats, without pydantic, the specs whose shape project.yml shares: same names,
    same fields in the same order, same defaults as their pydantic dataclasses in config_models.py."""
    from dataclasses import MISSING, fields

    from pydantic.fields import FieldInfo

    from script_factory import config_models
    from script_factory.config_specs import SAME_SHAPE

    def default(field: object) -> object:
        value = field.default  # type: ignore[attr-defined]
        if isinstance(value, FieldInfo):
            if value.default_factory is not None:
                return value.default_factory()  # type: ignore[call-arg]
            value = value.default
        elif field.default_factory is not MISSING:  # type: ignore[attr-defined]
            return field.default_factory()  # type: ignore[attr-defined]
        return MISSING if value is MISSING or repr(value) == "PydanticUndefined" else value

    for spec in SAME_SHAPE:
        model = getattr(config_models, spec.__name__)
        assert model is not spec and "__pydantic_fields__" in vars(model)
        plain = [(f.name, default(f)) for f in fields(spec)]
        validated = [(f.name, default(f)) for f in fields(model)]
        assert plain == validated, spec.__name__


def test_a_validated_project_holds_no_pydantic_object(tmp_path: Path) -> None:
    """What validation returns (and the config cache pickles) is plain data: reading it needs no pydantic."""
    from dataclasses import fields, is_dataclass

    from script_factory.config_specs import SAME_SHAPE

    block = (REPO / "README.md").read_text(encoding="utf-8").split("A complete, annotated `project.yml`")[1]
    doc = yaml.safe_load(block.split("```yaml\n", 1)[1].split("```", 1)[0])
    doc["connections"] |= {"snow": {}, "lake": {}}
    doc["depends_on"] = [{"project": "upstream", "max_age": "6h"}]
    (tmp_path / "upstream").mkdir()
    (tmp_path / "upstream" / "project.yml").write_text("project: upstream\n", encoding="utf-8")
    project = load_or_parse(doc, tmp_path / "sales_demo")
    assert project.email is not None and project.depends_on and project.aggregations
    seen: list[str] = []

    def walk(value: object) -> None:
        module = type(value).__module__
        seen.append(type(value).__name__)
        assert not module.startswith(("pydantic", "script_factory.config_models")), (type(value), value)
        if is_dataclass(value) and not isinstance(value, type):
            for f in fields(value):
                walk(getattr(value, f.name))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, (tuple, list, frozenset, set)):
            for item in value:
                walk(item)

    walk(project)
    assert {spec.__name__ for spec in SAME_SHAPE} <= set(seen)  # every one of them was checked
