"""customer_code/project.schema.json: generated from the config models, committed up to date, and
agreeing with the parser on valid and invalid projects."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from script_factory.config import SCHEMA_COMMAND, SCHEMA_FILE, parse_project, schema_text
from utilities.errors import ConfigError

jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "customer_code" / "sales_demo" / "project.yml"


class EditorLoader(yaml.SafeLoader):
    """YAML as editors read it (1.2 core schema): dates stay strings, and on/off/yes/no are not booleans."""


EditorLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith((":bool", ":timestamp"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
BOOLEAN_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
EditorLoader.add_implicit_resolver("tag:yaml.org,2002:bool", BOOLEAN_12, list("tTfF"))


def as_an_editor_reads_it(text: str) -> Any:
    return yaml.load(text, Loader=EditorLoader)  # a SafeLoader


def schema_errors(doc: Any) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def test_the_committed_schema_is_up_to_date() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.is_file() else ""
    assert committed == schema_text(), f"{SCHEMA_FILE.relative_to(REPO)} is out of date: run {SCHEMA_COMMAND}"


def test_the_schema_command_prints_the_committed_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "script_factory.config", "--schema"],
        cwd=REPO,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == SCHEMA_FILE.read_text(encoding="utf-8")


def test_the_schema_is_a_valid_json_schema_with_help_texts() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "one ETL project" in schema["description"]
    table = schema["$defs"]["TableDoc"]["properties"]
    assert "required for merge" in table["keys"]["description"]


def test_the_demo_project_validates_against_the_schema() -> None:
    text = DEMO.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../project.schema.json\n")
    assert schema_errors(as_an_editor_reads_it(text)) == []


@pytest.mark.parametrize(
    "text",
    [
        "project: p1\ntabels: []\n",
        "project: p1\ntables:\n  - {target: t, source: {connection: warehouse, table: t}, strategy: upsert}\n",
        "project: p1\ntables:\n  - {target: t, source: {connection: warehouse}, strategy: replace, bogus: 1}\n",
        "project: p1\nchecks:\n  - {kind: sometimes, table: t}\n",
        "project: p1\nchecks:\n  - {kind: not_null, table: t}\n",
        "project: p1\nddl: [../outside.sql]\n",
        "project: p1\nconnections:\n  src: {default: 'postgresql://u@h/db'}\n",
        "project: p1\nretries: {attempts: 0}\n",
        "project: P1\n",
        "project: p1\nconnections: {Erp: {}}\n",
        "description: no project key\n",
    ],
)
def test_the_schema_rejects_what_the_parser_rejects(text: str, tmp_path: Path) -> None:
    folder = tmp_path / "p1"
    with pytest.raises(ConfigError):
        parse_project(yaml.safe_load(text), folder, folder / "project.yml")
    assert schema_errors(as_an_editor_reads_it(text)) != []


@pytest.mark.parametrize(
    "text",
    [
        DEMO.read_text(encoding="utf-8"),
        "project: p1\n",
        "project: p1\nafter_load:\nretries:\nconnections:\n  erp:\n",  # keys written with no value
        "project: p1\nincremental: {initial_start: 2024-01-01 08:00:00, lookback: 2h, timezone: Europe/Paris}\n",
        "project: p1\nincremental: {lookback: 90}\nschedule: '@daily'\n",
        "project: p1\nconnections: {lake: {}}\ntables:\n"
        "  - {target: raw.t, source: {connection: lake, pattern: 'x/*.csv', format: csv}, strategy: replace}\n",
        "project: p1\nnotify:\n  email:\n    to: [a@example.com]\n    on: [success]\n",
    ],
)
def test_the_schema_accepts_what_the_parser_accepts(text: str, tmp_path: Path) -> None:
    raw = yaml.safe_load(text)
    folder = tmp_path / raw["project"]
    parse_project(raw, folder, folder / "project.yml")
    assert schema_errors(as_an_editor_reads_it(text)) == []
