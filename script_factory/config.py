"""The project model: ``project.yml`` validated into frozen specs, every error naming file, key and expectation.

Models or dataclasses? Both, each where it fits. The pydantic models of config_models.py describe the
file as it is written: they validate it (collecting every error at once) and generate its JSON Schema
(customer_code/project.schema.json). The engine uses the plain frozen dataclasses of config_specs.py
(``dataclasses.is_dataclass`` and plain ``repr`` for ``--dry-run``, no pydantic after validation),
because for the project, its connections, tables, checks and outputs the shape the engine wants
differs from the file's (``project`` is ``name``, ``incremental:`` is flattened, a check's options are
gathered, defaults come from the project). Where both shapes are the same (retries, retention,
aggregations, functions, e-mail...), the pydantic dataclass and the spec share name and fields, and the
validated value is copied into the spec. This module imports pydantic only when it validates, so a
config read from the cache (script_factory/config_cache.py) runs without it.

    python -m script_factory.config --write-schema     # regenerate customer_code/project.schema.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from connectors.base import TableName
from script_factory.config_specs import (
    ANY_FAILING,
    DEFAULT_CHUNK_SIZE,
    IDENTIFIER,
    NAME,
    AggregationSpec,
    CheckSpec,
    ConnectionSpec,
    DependencySpec,
    EmailSpec,
    FunctionSpec,
    OutputSpec,
    ProjectConfig,
    ReconcileSpec,
    RetentionSpec,
    RetrySpec,
    Severity,
    SourceSpec,
    Strategy,
    TablePattern,
    TableSpec,
)
from script_factory.settings import WAREHOUSE_CONNECTION
from script_factory.transform_spec import ColumnRule, DedupeRule, LookupRule, TransformSpec
from utilities.errors import ConfigError

if TYPE_CHECKING:
    from script_factory.config_models import CheckDoc, OutputDoc, ProjectFile, TableDoc

__all__ = [
    "ANY_FAILING",
    "DEFAULT_CHUNK_SIZE",
    "IDENTIFIER",
    "NAME",
    "SCHEMA_FILE",
    "AggregationSpec",
    "CheckSpec",
    "ConnectionSpec",
    "DependencySpec",
    "EmailSpec",
    "FunctionSpec",
    "OutputSpec",
    "ProjectConfig",
    "ReconcileSpec",
    "RetentionSpec",
    "RetrySpec",
    "Severity",
    "SourceSpec",
    "Strategy",
    "TablePattern",
    "TableSpec",
    "load_project",
    "parse_project",
    "schema_text",
]

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "customer_code" / "project.schema.json"
SCHEMA_COMMAND = "python -m script_factory.config --write-schema"
T = TypeVar("T")


def load_project(folder: Path) -> ProjectConfig:
    """Read and validate ``folder/project.yml``; raises ConfigError naming the file and the key."""
    import yaml

    file = folder / "project.yml"
    if not file.is_file():
        raise ConfigError(f"{file}: not found; every project folder needs a project.yml")
    data = file.read_bytes()
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # a byte order mark (Windows Notepad) is harmless
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{file}: line {line}, byte offset {exc.start} (0x{data[exc.start]:02x}): not UTF-8 text; "
            "save the file with the UTF-8 encoding (e.g. 'Save with Encoding' in your editor)"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}:{where}: invalid YAML: {problem}") from None
    return parse_project(raw, folder, file)


def parse_project(raw: Any, folder: Path, file: Path) -> ProjectConfig:
    """Validate the parsed YAML of one project (see :func:`load_project`); every error in one ConfigError."""
    from pydantic import ValidationError

    from script_factory.config_models import ProjectFile

    try:
        context = {"folder": folder.name, "connections": _declared(raw), "loaded": _loaded(raw)}
        doc = ProjectFile.model_validate(raw, context=context)
    except ValidationError as exc:
        from script_factory.config_messages import config_error  # the error path only

        raise config_error(exc, raw, file) from None
    tables = tuple(_table(t, doc) for t in doc.tables)
    if doc.publish == "run" and (stays := [str(t.target) for t in tables if t.continue_on_error]):
        key = "continue_on_error" if doc.continue_on_error else f"tables ({stays[0]}).continue_on_error"
        if doc.defaults is not None and doc.defaults.continue_on_error and not doc.continue_on_error:
            key = "defaults.continue_on_error"
        raise ConfigError(
            f"{file}: {key}: publish: run publishes all of the run or nothing, so it cannot go on after a failing "
            "table; drop continue_on_error or use publish: table"
        )
    if doc.publish == "run" and doc.parallel > 1:
        raise ConfigError(
            f"{file}: parallel: {doc.parallel}: publish: run puts every load in one transaction on one warehouse "
            "connection, so its tables cannot load at once; drop parallel or use publish: table"
        )
    for upstream in doc.depends_on:
        if not (folder.parent / upstream.project / "project.yml").is_file():
            raise ConfigError(
                f"{file}: depends_on: unknown project {upstream.project!r} (no {folder.parent / upstream.project}"
                "/project.yml); name a project folder under customer_code/"
            )
    return ProjectConfig(
        name=doc.project,
        folder=folder,
        description=doc.description,
        warehouse=doc.warehouse,
        connections=_connections(doc),
        initial_start=doc.incremental.initial_start,
        lookback=doc.incremental.lookback,
        timezone=doc.incremental.timezone,
        retries=_plain(doc.retries, RetrySpec),
        ddl=doc.ddl,
        before_load=tuple(_plain(f, FunctionSpec) for f in doc.before_load),
        tables=tables,
        after_load=tuple(_plain(f, FunctionSpec) for f in doc.after_load),
        checks=tuple(_check(c) for c in doc.checks),
        aggregations=tuple(_plain(a, AggregationSpec) for a in doc.aggregations),
        outputs=tuple(_output(o, doc.warehouse) for o in doc.outputs),
        email=None if doc.notify.email is None else _plain(doc.notify.email, EmailSpec),
        retention=_plain(doc.retention, RetentionSpec),
        schedule=doc.schedule,
        chunk_size=doc.chunk_size,
        publish=doc.publish,
        skip_when_no_data=doc.skip_when_no_data,
        continue_on_error=doc.continue_on_error,
        parallel=doc.parallel,
        depends_on=tuple(_plain(d, DependencySpec) for d in doc.depends_on),
    )


def _plain(value: Any, spec: type[T]) -> T:
    """A validated pydantic dataclass of config_models.py as the spec of the same name and fields."""
    return spec(**{f.name: getattr(value, f.name) for f in fields(spec)})  # type: ignore[arg-type]


def _declared(raw: Any) -> set[str]:
    """The connection names a project declares (the warehouse included), for checking references."""
    if not isinstance(raw, dict):
        return set()
    declared = {raw.get("warehouse") or WAREHOUSE_CONNECTION}
    if isinstance(raw.get("connections"), dict):
        declared |= set(raw["connections"])
    return {name for name in declared if isinstance(name, str)}


def _loaded(raw: Any) -> list[str]:
    """The warehouse tables the project loads, in order (a relationships check needs its ``to`` first)."""
    from script_factory.config_models import with_defaults

    raw = with_defaults(raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("tables"), list):
        return []
    warehouse = raw.get("warehouse") or WAREHOUSE_CONNECTION
    return [
        t["target"].strip()
        for t in raw["tables"]
        if isinstance(t, dict) and isinstance(t.get("target"), str) and t.get("target_connection") in (None, warehouse)
    ]


def _table(doc: TableDoc, project: ProjectFile) -> TableSpec:
    return TableSpec(
        target=_target(doc),
        source=_source(doc),
        strategy=doc.strategy,
        keys=doc.keys,
        cursor=doc.cursor,
        chunk_size=doc.chunk_size or project.chunk_size,
        target_connection=doc.target_connection,
        precheck=project.precheck if doc.precheck is None else doc.precheck,
        reconcile=None if doc.reconcile is None else _plain(doc.reconcile, ReconcileSpec),
        profile=project.profile if doc.profile is None else doc.profile,
        create=project.create if doc.create is None else doc.create,
        on_schema_change=doc.on_schema_change or project.on_schema_change,
        continue_on_error=project.continue_on_error if doc.continue_on_error is None else doc.continue_on_error,
        transforms=_transforms(doc),
    )


def _transforms(doc: TableDoc) -> TransformSpec | None:
    """The table's transforms as engine data (see script_factory/transform_spec.py), or None."""
    if not (doc.select or doc.drop or doc.columns or doc.dedupe or doc.lookups or doc.transform):
        return None
    columns = tuple(
        ColumnRule(name, c.rename, c.cast, c.trim, c.null_if, c.default, c.hash, c.mask, c.encrypt)
        for name, c in doc.columns.items()
    )
    lookups = tuple(
        LookupRule(
            lk.column,
            lk.key,
            lk.value,
            lk.name or lk.value,
            lk.source.file,
            lk.source.connection,
            lk.source.table,
            lk.type,
        )  # fmt: skip
        for lk in doc.lookups
    )
    dedupe = DedupeRule(doc.dedupe.keys or doc.keys, doc.cursor) if doc.dedupe and doc.cursor else None
    return TransformSpec(doc.select, doc.drop, columns, lookups, dedupe, doc.transform)


def _target(doc: TableDoc) -> TableName:
    """The table's target; for a pattern entry, what its targets look like (``erp_*``) until it is expanded."""
    from script_factory.config_models import TablePatternEntryDoc

    if isinstance(doc, TablePatternEntryDoc):
        return TableName(f"{doc.target_prefix or ''}*", doc.target_schema)
    return doc.target


def _source(doc: TableDoc) -> SourceSpec:
    from script_factory.config_models import SourceDoc, TablePatternEntryDoc

    if isinstance(doc, TablePatternEntryDoc):
        tables = doc.source.tables
        pattern = TablePattern(
            tables.schema_, tables.include, tables.exclude, doc.target_schema, doc.target_prefix or ""
        )
        return SourceSpec(connection=doc.source.connection, pattern=pattern)
    source: SourceDoc = doc.source
    options = dict(source.model_extra or {})  # the connector's own keys (S3, Salesforce...)
    return SourceSpec(connection=source.connection, query_file=source.query, table=source.table, options=options)


def _connections(doc: ProjectFile) -> dict[str, ConnectionSpec]:
    declared = {name: ConnectionSpec(name, body.default if body else None) for name, body in doc.connections.items()}
    return {doc.warehouse: ConnectionSpec(doc.warehouse), **declared}


def _check(doc: CheckDoc) -> CheckSpec:
    from script_factory.config_models import CHECK_KINDS

    options = {key: getattr(doc, key) for key in type(doc).model_fields if key in CHECK_KINDS[doc.kind]}
    severity = doc.severity
    if doc.error_if or doc.warn_if:  # severity is not written with them: the highest they can give
        severity = Severity.ERROR if doc.error_if else Severity.WARN
    return CheckSpec(
        name=doc.check_name,
        kind=doc.kind,
        table=doc.table,
        severity=severity,
        options=options,
        error_if=doc.error_if,
        warn_if=doc.warn_if,
    )


def _output(doc: OutputDoc, warehouse: str) -> OutputSpec:
    return OutputSpec(
        name=doc.name,
        query_file=doc.query,
        connection=doc.connection or warehouse,
        delete_after_run=doc.delete_after_run,
        upload=doc.upload,
    )


def schema_text() -> str:
    """customer_code/project.schema.json as it should be: pretty-printed, keys sorted, one final newline."""
    from script_factory.config_models import json_schema

    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """``--write-schema``: regenerate customer_code/project.schema.json; ``--schema``: print it."""
    if argv == ["--write-schema"]:
        SCHEMA_FILE.write_text(schema_text(), encoding="utf-8", newline="\n")
        sys.stdout.write(f"wrote {SCHEMA_FILE}\n")
        return 0
    if argv == ["--schema"]:
        sys.stdout.write(schema_text())
        return 0
    sys.stderr.write("usage: python -m script_factory.config --write-schema | --schema\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
