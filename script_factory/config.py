"""The project model: ``project.yml`` parsed into frozen dataclasses, with errors naming file and key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from connectors.base import TableName
from script_factory.settings import WAREHOUSE_CONNECTION
from utilities.dates import parse_duration, parse_iso_datetime, zone
from utilities.errors import ConfigError

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
DEFAULT_CHUNK_SIZE = 50_000


class Strategy(StrEnum):
    """How a table's rows are applied to the target (see script_factory/load_strategies.py)."""

    APPEND = "append"
    MERGE = "merge"
    REPLACE = "replace"
    DELETE_INSERT = "delete_insert"


class Severity(StrEnum):
    ERROR = "error"
    WARN = "warn"


@dataclass(frozen=True)
class ConnectionSpec:
    """A connection a project uses: its name and, for embedded SQLite only, a default URL."""

    name: str
    default_url: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    """Where a table's rows come from: a connection plus a query file, a table, or connector options."""

    connection: str
    query_file: str | None = None
    table: TableName | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TableSpec:
    target: TableName
    source: SourceSpec
    strategy: Strategy
    keys: tuple[str, ...] = ()
    cursor: str | None = None
    chunk_size: int | None = None
    target_connection: str | None = None  # None: the project's warehouse


@dataclass(frozen=True)
class FunctionSpec:
    """A function of the project's ``script_worker.py`` with its keyword parameters."""

    function: str
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def task_name(self) -> str:
        return self.name or self.function


@dataclass(frozen=True)
class AggregationSpec:
    name: str
    file: str  # below aggregations/


@dataclass(frozen=True)
class CheckSpec:
    name: str
    kind: str
    table: TableName | None
    severity: Severity
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputSpec:
    name: str
    query_file: str
    connection: str = WAREHOUSE_CONNECTION
    delete_after_run: bool = False
    upload: str | None = None  # a destination connection (e.g. S3) the CSV is also uploaded to


@dataclass(frozen=True)
class EmailSpec:
    to: tuple[str, ...]
    on: frozenset[str]


@dataclass(frozen=True)
class RetentionSpec:
    log_days: int | None = None
    log_runs: int | None = None
    output_days: int | None = None
    output_runs: int | None = None


@dataclass(frozen=True)
class RetrySpec:
    attempts: int = 1
    backoff_seconds: float = 5.0


@dataclass(frozen=True)
class ProjectConfig:
    """A validated project.yml. File paths are still relative; the factory resolves them."""

    name: str
    folder: Path
    description: str = ""
    warehouse: str = WAREHOUSE_CONNECTION
    connections: Mapping[str, ConnectionSpec] = field(default_factory=dict)
    initial_start: datetime = datetime(1900, 1, 1)
    lookback: timedelta = timedelta(0)
    timezone: str = "UTC"
    retries: RetrySpec = field(default_factory=RetrySpec)
    ddl: tuple[str, ...] = ()
    before_load: tuple[FunctionSpec, ...] = ()
    tables: tuple[TableSpec, ...] = ()
    after_load: tuple[FunctionSpec, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    aggregations: tuple[AggregationSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    email: EmailSpec | None = None
    retention: RetentionSpec = field(default_factory=RetentionSpec)
    schedule: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE


CHECK_KINDS = {
    "not_null": {"columns"},
    "unique": {"columns"},
    "accepted_values": {"column", "values"},
    "row_count": {"min", "max"},
    "freshness": {"column", "max_age"},
    "custom_sql": {"file"},
}


class _Reader:
    """Walks the parsed YAML, tracking the key path so every error names file, key and expectation."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def fail(self, path: str, expected: str, got: Any = ...) -> ConfigError:
        shown = "" if got is ... else f", got {_show(got)}"
        return ConfigError(f"{self.file}: {path}: expected {expected}{shown}")

    def mapping(self, value: Any, path: str, allowed: set[str], required: set[str] = frozenset()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "a mapping (key: value lines)", value)
        for key in value:
            if key not in allowed:
                raise ConfigError(
                    f"{self.file}: {path}.{key}: unknown key (expected one of: {', '.join(sorted(allowed))})"
                )
        for key in sorted(required):
            if key not in value or value[key] is None:
                raise ConfigError(f"{self.file}: {path}.{key}: missing (it is required)")
        return value

    def items(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, "a list (lines starting with '- ')", value)
        return value

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, "a non-empty string", value)
        return value.strip()

    def name(self, value: Any, path: str) -> str:
        text = self.text(value, path)
        if not NAME.match(text):
            raise self.fail(path, "a lower-case name of letters, digits and '_' starting with a letter", text)
        return text

    def identifier(self, value: Any, path: str) -> str:
        text = self.text(value, path)
        if not IDENTIFIER.match(text):
            raise self.fail(path, "a column name of letters, digits and '_' (at most 63 characters)", text)
        return text

    def table(self, value: Any, path: str) -> TableName:
        text = self.text(value, path)
        parts = text.split(".")
        if len(parts) > 2 or not all(IDENTIFIER.match(p) for p in parts):
            raise self.fail(path, "a table name such as dim_customer or analytics.dim_customer", text)
        return TableName(parts[-1], parts[0] if len(parts) == 2 else None)

    def integer(self, value: Any, path: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(path, f"a whole number >= {minimum}", value)
        return value

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise self.fail(path, "a number >= 0", value)
        return float(value)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, "true or false", value)
        return value

    def moment(self, value: Any, path: str) -> datetime:
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        try:
            return parse_iso_datetime(self.text(value, path))
        except ValueError:
            raise self.fail(path, "an ISO date or datetime such as 2024-01-01", value) from None

    def duration(self, value: Any, path: str) -> timedelta:
        try:
            return parse_duration(value)
        except ValueError:
            raise self.fail(path, "a duration such as 0, 30m, 2h or 1d", value) from None

    def relative_file(self, value: Any, path: str) -> str:
        text = self.text(value, path)
        if Path(text).is_absolute() or ".." in Path(text).parts:
            raise self.fail(path, "a path inside the project (no absolute path, no '..')", text)
        return text.replace("\\", "/")


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return type(value).__name__
    return repr(value)


PROJECT_KEYS = {
    "project",
    "description",
    "warehouse",
    "connections",
    "incremental",
    "retries",
    "ddl",
    "before_load",
    "tables",
    "after_load",
    "checks",
    "aggregations",
    "outputs",
    "notify",
    "retention",
    "schedule",
    "chunk_size",
}


def load_project(folder: Path) -> ProjectConfig:
    """Read and validate ``folder/project.yml``; raises ConfigError naming the file and the key."""
    import yaml

    file = folder / "project.yml"
    if not file.is_file():
        raise ConfigError(f"{file}: not found; every project folder needs a project.yml")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}:{where}: invalid YAML: {problem}") from None
    return parse_project(raw, folder, file)


def parse_project(raw: Any, folder: Path, file: Path) -> ProjectConfig:
    """Validate the parsed YAML of one project (see :func:`load_project`)."""
    r = _Reader(file)
    doc = r.mapping(raw, "project.yml", PROJECT_KEYS, {"project"})
    name = r.name(doc["project"], "project")
    if name != folder.name:
        raise ConfigError(f"{file}: project: {name!r} must equal the folder name {folder.name!r}")
    warehouse = r.name(doc.get("warehouse", WAREHOUSE_CONNECTION), "warehouse")
    connections = _connections(r, doc.get("connections"), warehouse)
    chunk_size = r.integer(doc.get("chunk_size", DEFAULT_CHUNK_SIZE), "chunk_size", 1)
    inc = r.mapping(doc.get("incremental") or {}, "incremental", {"initial_start", "lookback", "timezone"})
    timezone_name = r.text(inc.get("timezone", "UTC"), "incremental.timezone")
    try:
        zone(timezone_name)
    except ValueError as exc:
        raise ConfigError(f"{file}: incremental.timezone: {exc}") from None
    retries = r.mapping(doc.get("retries") or {}, "retries", {"attempts", "backoff_seconds"})
    config = ProjectConfig(
        name=name,
        folder=folder,
        description=str(doc.get("description") or "").strip(),
        warehouse=warehouse,
        connections=connections,
        initial_start=r.moment(inc.get("initial_start", "1900-01-01"), "incremental.initial_start"),
        lookback=r.duration(inc.get("lookback", 0), "incremental.lookback"),
        timezone=timezone_name,
        retries=RetrySpec(
            attempts=r.integer(retries.get("attempts", 1), "retries.attempts", 1),
            backoff_seconds=r.number(retries.get("backoff_seconds", 5), "retries.backoff_seconds"),
        ),
        ddl=tuple(r.relative_file(v, f"ddl[{i}]") for i, v in enumerate(r.items(doc.get("ddl"), "ddl"))),
        before_load=_functions(r, doc.get("before_load"), "before_load"),
        tables=_tables(r, doc.get("tables"), chunk_size),
        after_load=_functions(r, doc.get("after_load"), "after_load"),
        checks=_checks(r, doc.get("checks")),
        aggregations=_aggregations(r, doc.get("aggregations")),
        outputs=_outputs(r, doc.get("outputs")),
        email=_email(r, doc.get("notify")),
        retention=_retention(r, doc.get("retention")),
        schedule=r.text(doc["schedule"], "schedule") if doc.get("schedule") is not None else None,
        chunk_size=chunk_size,
    )
    _check_references(r, config)
    _check_unique_names(r, config)
    return config


def _connections(r: _Reader, value: Any, warehouse: str) -> dict[str, ConnectionSpec]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise r.fail("connections", "a mapping of connection names (credentials stay in ETL_CONN_<NAME>)", value)
    result = {warehouse: ConnectionSpec(warehouse)}
    for key, body in value.items():
        name = r.name(key, f"connections.{key}")
        body = r.mapping(body or {}, f"connections.{name}", {"default"})
        default = body.get("default")
        if default is not None:
            default = r.text(default, f"connections.{name}.default")
            if not default.startswith("sqlite:///"):
                raise r.fail(
                    f"connections.{name}.default",
                    "a sqlite:/// URL (other URLs carry credentials: set ETL_CONN_" + name.upper() + " instead)",
                    default,
                )
        result[name] = ConnectionSpec(name, default)
    return result


def _functions(r: _Reader, value: Any, section: str) -> tuple[FunctionSpec, ...]:
    specs = []
    for i, item in enumerate(r.items(value, section)):
        path = f"{section}[{i}]"
        body = r.mapping(item, path, {"function", "params", "name"}, {"function"})
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise r.fail(f"{path}.params", "a mapping of keyword parameters", params)
        specs.append(
            FunctionSpec(
                function=r.identifier(body["function"], f"{path}.function"),
                params=dict(params),
                name=r.name(body["name"], f"{path}.name") if body.get("name") else None,
            )
        )
    return tuple(specs)


TABLE_KEYS = {"target", "target_connection", "source", "strategy", "keys", "cursor", "chunk_size"}
SOURCE_KEYS = {"connection", "query", "table"}


def _tables(r: _Reader, value: Any, chunk_size: int) -> tuple[TableSpec, ...]:
    specs = []
    for i, item in enumerate(r.items(value, "tables")):
        path = f"tables[{i}]"
        body = r.mapping(item, path, TABLE_KEYS, {"target", "source", "strategy"})
        target = r.table(body["target"], f"{path}.target")
        path = f"tables[{i}] ({target})"
        source = _source(r, body["source"], f"{path}.source")
        strategy_text = r.text(body["strategy"], f"{path}.strategy")
        try:
            strategy = Strategy(strategy_text)
        except ValueError:
            raise r.fail(f"{path}.strategy", "one of append, merge, replace, delete_insert", strategy_text) from None
        keys = tuple(
            r.identifier(k, f"{path}.keys[{j}]") for j, k in enumerate(r.items(body.get("keys"), f"{path}.keys"))
        )
        cursor = r.identifier(body["cursor"], f"{path}.cursor") if body.get("cursor") is not None else None
        if strategy is Strategy.MERGE and not keys:
            raise r.fail(f"{path}.keys", "the key columns a merge matches on, e.g. keys: [customer_id]")
        if strategy is Strategy.APPEND and not cursor:
            raise r.fail(
                f"{path}.cursor",
                "the cursor column an append loads after (without one, every run "
                "would append every row again; use replace or merge)",
            )
        if strategy is Strategy.DELETE_INSERT and not cursor:
            raise r.fail(f"{path}.cursor", "the cursor column whose window delete_insert replaces")
        specs.append(
            TableSpec(
                target=target,
                source=source,
                strategy=strategy,
                keys=keys,
                cursor=cursor,
                chunk_size=r.integer(body.get("chunk_size", chunk_size), f"{path}.chunk_size", 1),
                target_connection=(
                    r.name(body["target_connection"], f"{path}.target_connection")
                    if body.get("target_connection") is not None
                    else None
                ),
            )
        )
    return tuple(specs)


def _source(r: _Reader, value: Any, path: str) -> SourceSpec:
    if not isinstance(value, dict):
        raise r.fail(path, "a mapping with connection and query (a .sql file) or table", value)
    if "connection" not in value:
        raise ConfigError(f"{r.file}: {path}.connection: missing (it is required)")
    connection = r.name(value["connection"], f"{path}.connection")
    options = {k: v for k, v in value.items() if k not in SOURCE_KEYS}
    query = r.relative_file(value["query"], f"{path}.query") if value.get("query") is not None else None
    table = r.table(value["table"], f"{path}.table") if value.get("table") is not None else None
    if query and table:
        raise r.fail(path, "either query or table, not both")
    return SourceSpec(connection=connection, query_file=query, table=table, options=options)


def _checks(r: _Reader, value: Any) -> tuple[CheckSpec, ...]:
    specs = []
    for i, item in enumerate(r.items(value, "checks")):
        path = f"checks[{i}]"
        if not isinstance(item, dict):
            raise r.fail(path, "a mapping with kind, table and the kind's options", item)
        kind = r.text(item.get("kind"), f"{path}.kind")
        if kind not in CHECK_KINDS:
            raise r.fail(f"{path}.kind", "one of " + ", ".join(sorted(CHECK_KINDS)), kind)
        allowed = {"name", "kind", "table", "severity"} | CHECK_KINDS[kind]
        body = r.mapping(item, path, allowed, {"kind"} | ({"table"} if kind != "custom_sql" else set()))
        severity_text = r.text(body.get("severity", "error"), f"{path}.severity")
        if severity_text not in {"error", "warn"}:
            raise r.fail(f"{path}.severity", "error or warn", severity_text)
        table = r.table(body["table"], f"{path}.table") if body.get("table") else None
        options = _check_options(r, kind, body, path)
        default_name = f"{kind}_{table.name}" if table else kind
        name = r.name(body.get("name", default_name), f"{path}.name")
        specs.append(CheckSpec(name=name, kind=kind, table=table, severity=Severity(severity_text), options=options))
    return tuple(specs)


def _check_options(r: _Reader, kind: str, body: dict[str, Any], path: str) -> dict[str, Any]:
    if kind in {"not_null", "unique"}:
        columns = r.items(body.get("columns"), f"{path}.columns")
        if not columns:
            raise r.fail(f"{path}.columns", "a non-empty list of column names")
        return {"columns": tuple(r.identifier(c, f"{path}.columns[{j}]") for j, c in enumerate(columns))}
    if kind == "accepted_values":
        values = r.items(body.get("values"), f"{path}.values")
        if not values:
            raise r.fail(f"{path}.values", "a non-empty list of accepted values")
        return {"column": r.identifier(body.get("column"), f"{path}.column"), "values": tuple(values)}
    if kind == "row_count":
        low = r.integer(body["min"], f"{path}.min") if body.get("min") is not None else None
        high = r.integer(body["max"], f"{path}.max") if body.get("max") is not None else None
        if low is None and high is None:
            raise r.fail(path, "min, max or both")
        return {"min": low, "max": high}
    if kind == "freshness":
        return {
            "column": r.identifier(body.get("column"), f"{path}.column"),
            "max_age": r.duration(body.get("max_age"), f"{path}.max_age"),
        }
    return {"file": r.relative_file(body.get("file"), f"{path}.file")}


def _aggregations(r: _Reader, value: Any) -> tuple[AggregationSpec, ...]:
    specs = []
    for i, item in enumerate(r.items(value, "aggregations")):
        path = f"aggregations[{i}]"
        body = r.mapping(item, path, {"name", "file"}, {"name", "file"})
        specs.append(
            AggregationSpec(r.name(body["name"], f"{path}.name"), r.relative_file(body["file"], f"{path}.file"))
        )
    return tuple(specs)


def _outputs(r: _Reader, value: Any) -> tuple[OutputSpec, ...]:
    specs = []
    for i, item in enumerate(r.items(value, "outputs")):
        path = f"outputs[{i}]"
        body = r.mapping(item, path, {"name", "query", "connection", "delete_after_run", "upload"}, {"name", "query"})
        specs.append(
            OutputSpec(
                name=r.name(body["name"], f"{path}.name"),
                query_file=r.relative_file(body["query"], f"{path}.query"),
                connection=r.name(body.get("connection", WAREHOUSE_CONNECTION), f"{path}.connection"),
                delete_after_run=r.boolean(body.get("delete_after_run", False), f"{path}.delete_after_run"),
                upload=r.name(body["upload"], f"{path}.upload") if body.get("upload") is not None else None,
            )
        )
    return tuple(specs)


def _email(r: _Reader, value: Any) -> EmailSpec | None:
    if value is None:
        return None
    notify = r.mapping(value, "notify", {"email"})
    if notify.get("email") is None:
        return None
    email = notify["email"]
    if isinstance(email, dict) and True in email:  # YAML 1.1 reads a bare `on:` key as the boolean true
        email = {("on" if k is True else k): v for k, v in email.items()}
    body = r.mapping(email, "notify.email", {"to", "on"}, {"to"})
    to = tuple(r.text(a, f"notify.email.to[{i}]") for i, a in enumerate(r.items(body["to"], "notify.email.to")))
    if not to or not all("@" in a for a in to):
        raise r.fail("notify.email.to", "a list of e-mail addresses", body["to"])
    on = r.items(body.get("on", ["failure"]), "notify.email.on")
    if not on or not set(on) <= {"success", "failure"}:
        raise r.fail("notify.email.on", "a list of success and/or failure", on)
    return EmailSpec(to=to, on=frozenset(on))


def _retention(r: _Reader, value: Any) -> RetentionSpec:
    body = r.mapping(value or {}, "retention", {"log_days", "log_runs", "output_days", "output_runs"})
    return RetentionSpec(**{k: r.integer(v, f"retention.{k}", 1) for k, v in body.items() if v is not None})


def _check_references(r: _Reader, config: ProjectConfig) -> None:
    known = sorted(config.connections)
    used = [(f"tables ({t.target}).source.connection", t.source.connection) for t in config.tables]
    used += [
        (f"tables ({t.target}).target_connection", t.target_connection) for t in config.tables if t.target_connection
    ]
    used += [(f"outputs ({o.name}).connection", o.connection) for o in config.outputs]
    used += [(f"outputs ({o.name}).upload", o.upload) for o in config.outputs if o.upload]
    for path, name in used:
        if name not in config.connections:
            raise ConfigError(
                f"{r.file}: {path}: unknown connection {name!r} (declared: {', '.join(known)}); "
                f"add it under connections:"
            )


def _check_unique_names(r: _Reader, config: ProjectConfig) -> None:
    seen: set[str] = set()
    for section, names in (
        ("tables", [str(t.target) for t in config.tables]),
        ("before_load", [f.task_name for f in config.before_load]),
        ("after_load", [f.task_name for f in config.after_load]),
        ("checks", [c.name for c in config.checks]),
        ("aggregations", [a.name for a in config.aggregations]),
        ("outputs", [o.name for o in config.outputs]),
    ):
        for name in names:
            key = f"{section}:{name}"
            if key in seen:
                raise ConfigError(f"{r.file}: {section}: {name!r} appears twice; give each a distinct name")
            seen.add(key)
