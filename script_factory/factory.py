"""The script factory: project.yml + SQL files + script_worker.py -> an ordered tuple of tasks.

It validates everything that can be validated without a database (the config, every file, every
function and its parameters, every connection's URL and connector). Its one database I/O: a project
with pattern entries under ``tables:`` lists their sources' catalogs first (script_factory/expand.py),
so the tasks, ``--dry-run`` and ``--tables`` see ordinary tables. Task order: warehouse DDL,
before_load functions, table loads (as listed), after_load functions, quality checks, aggregations,
outputs, in three phases that ``--steps`` selects from: ``prepare`` (the DDL and before_load),
``load`` and ``finish`` (after_load, checks, aggregations, outputs). ``--tables`` keeps the DDL, the
functions, the loads of those tables and the checks on them, and leaves the aggregations and outputs
out (they read the whole warehouse); a repair run keeps only the DDL and its table's load.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from connectors import connector_class, scheme_of
from connectors.base import Connector
from connectors.sql import SqlConnector
from script_factory.config import CheckSpec, FunctionSpec, ProjectConfig, Strategy, TableSpec
from script_factory.expand import describe_pattern, expand_patterns
from script_factory.listing import project_names as folders_with_a_project
from script_factory.pii import pii_key
from script_factory.request import RunRequest, Step
from script_factory.settings import DEFAULT_WAREHOUSE_URL, Settings, connection_variable
from script_factory.steps.checks import preview_checks, run_checks
from script_factory.steps.function import call_function
from script_factory.steps.load import load_table, preview_load
from script_factory.steps.migrations import DdlFile, apply_ddl, preview_ddl
from script_factory.steps.output import preview_output, write_output
from script_factory.steps.sql_script import preview_sql_script, run_sql_script
from script_factory.task import StepResult, Task
from script_factory.transform_spec import PII_KEY_VARIABLE
from script_factory.transforms import Pipeline
from script_factory.window import check_requested_start
from utilities.dates import utc_now, zone
from utilities.errors import ConfigError
from utilities.secrets import Secret

WORKER_MODULE = "script_worker.py"


@dataclass(frozen=True)
class Plan:
    """A validated project and its tasks, ready for the runner (or for ``--dry-run``)."""

    project: ProjectConfig
    tasks: tuple[Task, ...]
    connection_urls: Mapping[str, Secret]
    notes: tuple[str, ...] = ()  # what the assembly decided that the log and --dry-run should say


def project_names(settings: Settings) -> list[str]:
    """The folders of ``customer_code/`` that hold a project.yml."""
    return folders_with_a_project(settings.paths.projects)


def load_project_config(name: str, settings: Settings) -> ProjectConfig:
    """The validated config of project ``name``; ConfigError listing the known ones if unknown."""
    folder = settings.paths.projects / name
    if folder.parent != settings.paths.projects or folder.name == "..":  # no '..', absolute path or a/b escapes
        raise ConfigError(f"project {name!r} is not a folder name under {settings.paths.projects}")
    if not (folder / "project.yml").is_file():
        known = ", ".join(project_names(settings)) or "none"
        raise ConfigError(
            f"unknown project {name!r}: no {folder / 'project.yml'} (known projects: {known}); "
            f"see script_runner.py --list"
        )
    from script_factory.config_cache import cached_project

    return cached_project(folder, settings.paths.metadata)


def build_plan(request: RunRequest, settings: Settings, expand: bool = True) -> Plan:
    """Assemble the tasks of ``request.project``; raises ConfigError before anything connects, except
    the sources of pattern entries, whose catalogs are read first (``expand=False``, for ``--check``:
    pattern entries are left out instead). A source that fails there raises its FatalError or
    TransientError."""
    project = load_project_config(request.project, settings)
    check_requested_start(request.start_date, request.end_date, utc_now(), zone(project.timezone))
    urls = resolve_connections(project, settings)
    if project.email is not None:
        from script_factory.report import smtp_settings

        smtp_settings(settings)  # a missing ETL_SMTP_* variable fails now, not after the loads
    patterns = [f"tables ({describe_pattern(t)})" for t in project.tables if t.source.pattern]
    if expand:
        project = expand_patterns(project, urls, settings)
    else:
        project = replace(project, tables=tuple(t for t in project.tables if t.source.pattern is None))
    uses_worker = (
        project.before_load or project.after_load or any(t.transforms and t.transforms.function for t in project.tables)
    )
    worker = _worker_module(project) if uses_worker else None
    a = _Assembly(project, settings, urls, _warehouse_dialect(project, urls), worker)
    only = _selected(project, request.tables)
    if request.repair:
        return Plan(project=project, tasks=(*_ddl_tasks(a), *_load_tasks(a, only)), connection_urls=urls)
    steps = request.steps
    tasks = (
        *(_ddl_tasks(a) + _function_tasks(a, "before_load") if Step.PREPARE in steps else ()),
        *(_load_tasks(a, only) if Step.LOAD in steps else ()),
        *(_function_tasks(a, "after_load") + _check_tasks(a, only) if Step.FINISH in steps else ()),
    )
    after = (*_aggregation_tasks(a), *_output_tasks(a)) if Step.FINISH in steps else ()
    notes = [f"{where}: {'expanded' if expand else 'left out (not expanded)'}" for where in patterns]
    if note := _parallel_note(project, tasks):
        notes.append(note)
    if only and after:
        notes.append(
            f"--tables {', '.join(only)}: left out {', '.join(t.name for t in after)} (aggregations and outputs "
            "read the whole warehouse; a run without --tables makes them)"
        )
    return Plan(project=project, tasks=tasks if only else (*tasks, *after), connection_urls=urls, notes=tuple(notes))


def _selected(project: ProjectConfig, names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` (``--tables``), each a table of the project; ConfigError listing the known ones if not."""
    known = [str(t.target) for t in project.tables]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(
            f"project {project.name}: no table {', '.join(unknown)} (its tables: {', '.join(known) or 'none'})"
        )
    return names


@dataclass(frozen=True)
class _Assembly:
    """What every section's assembly needs: the project, where files are, the connections' URLs."""

    project: ProjectConfig
    settings: Settings
    urls: Mapping[str, Secret]
    dialect: str  # the warehouse's, for ``name.<dialect>.sql`` files
    worker: ModuleType | None

    @property
    def where(self) -> Path:
        return self.project.folder / "project.yml"

    def connector(self, name: str) -> type[Connector]:
        return connector_class(scheme_of(self.urls[name].reveal()))


def make_task(
    name: str,
    kind: str,
    step: Callable[..., StepResult],
    preview: Callable[..., str] | None = None,
    /,
    *,
    target_table: str | None = None,
    writes_warehouse: bool = False,
    continue_on_error: bool = False,
    after: tuple[str, ...] = (),
    exclusive: frozenset[str] = frozenset(),
    **params: Any,
) -> Task:
    """A task binding ``params`` to ``step`` (and ``preview``), checked against their signatures now: a
    parameter the step does not take, or one it needs and lacks, is a ConfigError, not a task failure."""
    for func in (step, preview):
        if func is not None:
            _check_binding(name, func, params)
    return Task(
        name,
        kind,
        partial(step, **params),
        target_table=target_table,
        preview=partial(preview, **params) if preview is not None else None,
        writes_warehouse=writes_warehouse,
        continue_on_error=continue_on_error,
        after=after,
        exclusive=exclusive,
    )


def _exclusive(a: _Assembly, table: TableSpec) -> frozenset[str]:
    """The connections a load of ``table`` must have to itself when tables load at once (``parallel: N``):
    one that takes a single writer (SQLite: every load writes its state into the warehouse, so a SQLite
    warehouse takes them all), and one whose connector is not declared safe to share between threads
    (``Connector.shared_by_threads``: one client or session for the run)."""
    if a.project.parallel < 2:
        return frozenset()
    warehouse, target = a.project.warehouse, table.target_connection or a.project.warehouse
    lookups = table.transforms.lookups if table.transforms else ()
    used = {warehouse, target, table.source.connection, *(lk.connection for lk in lookups if lk.connection)}
    keys = {name for name in used if not a.connector(name).shared_by_threads}
    keys |= {name for name in (warehouse, target) if a.connector(name).single_writer}
    return frozenset(keys)


def _parallel_note(project: ProjectConfig, tasks: tuple[Task, ...]) -> str | None:
    """What ``parallel: N`` does with this plan's loads, for the log and --dry-run."""
    loads = [t for t in tasks if t.kind == "load"]
    if project.parallel < 2 or len(loads) < 2:
        return None
    note = (
        f"parallel: {project.parallel}: up to {min(project.parallel, len(loads))} of {len(loads)} tables load at once"
    )
    shared = sorted({key for t in loads for key in t.exclusive})
    if shared:
        note += f"; the loads using {', '.join(shared)} one at a time (one writer or one session)"
    waits = [f"{t.name} after {', '.join(t.after)}" for t in loads if t.after]
    if waits:
        note += f"; {'; '.join(waits)} (relationships checks)"
    return note


def _check_binding(task: str, func: Callable[..., Any], params: Mapping[str, Any]) -> None:
    """ConfigError naming the task when ``params`` do not fit ``func(ctx, **params)``."""
    where = f"task {task}: {func.__module__}.{func.__qualname__}"
    signature = inspect.signature(func)
    accepted = [p.name for p in list(signature.parameters.values())[1:]]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    unknown = sorted(set(params) - set(accepted))
    if unknown and not takes_any:
        raise ConfigError(f"{where}: no parameter {', '.join(map(repr, unknown))} (it takes {', '.join(accepted)})")
    try:
        signature.bind(None, **params)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _warehouse_dialect(project: ProjectConfig, urls: Mapping[str, Secret]) -> str:
    """The warehouse's dialect name; ConfigError when the warehouse cannot hold the audit tables."""
    scheme = scheme_of(urls[project.warehouse].reveal())
    cls = connector_class(scheme)
    if not cls.capabilities.write:
        raise ConfigError(
            f"the warehouse connection {project.warehouse!r} ({cls.kind}) cannot be a load target; "
            f"set ETL_CONN_{project.warehouse.upper()} to a PostgreSQL, SQLite or MariaDB URL"
        )
    if not issubclass(cls, SqlConnector):
        raise ConfigError(
            f"the warehouse connection {project.warehouse!r} is a {cls.kind}; the warehouse keeps the "
            f"audit tables and must be a SQL database (PostgreSQL, SQLite, MariaDB); load into {cls.kind} "
            f"with target_connection: on a table instead"
        )
    return "postgresql" if scheme == "postgres" else scheme


def _ddl_tasks(a: _Assembly) -> list[Task]:
    if not a.project.ddl:
        return []
    files = tuple(
        DdlFile(name, _read(a.project, a.settings.paths.warehouse_ddl, name, f"ddl ({name})", a.dialect))
        for name in a.project.ddl
    )
    return [make_task("warehouse_ddl", "ddl", apply_ddl, preview_ddl, files=files)]


def _load_tasks(a: _Assembly, only: tuple[str, ...] = ()) -> list[Task]:
    """One task per table (``only``: just those tables)."""
    tasks = []
    for table in a.project.tables:
        if only and str(table.target) not in only:
            continue
        where = f"tables ({table.target}).source"
        source_cls = a.connector(table.source.connection)
        if not source_cls.capabilities.read:
            raise ConfigError(f"{a.where}: {where}.connection: a {source_cls.kind} cannot be read from")
        if source_cls.capabilities.sql and not (table.source.query_file or table.source.table):
            raise ConfigError(f"{a.where}: {where}: expected query (a .sql file) or table")
        source_cls.validate_source(table.source.options, f"{a.where}: {where}")
        _check_target(a, table)
        query = table.source.query_file
        sql = _read(a.project, a.project.folder, query, f"{where}.query", None) if query else None
        in_warehouse = table.target_connection in (None, a.project.warehouse)
        gates = tuple(c for c in a.project.checks if in_warehouse and c.table == table.target)
        loaded_before = [str(t.target) for t in a.project.tables[: a.project.tables.index(table)]]
        after = tuple(
            f"load:{to}"  # a relationships gate reads its ``to`` table: with parallel: N it waits for its load
            for to in dict.fromkeys(str(c.options["to"]) for c in gates if c.kind == "relationships")
            if to in loaded_before and (not only or to in only)
        )
        tasks.append(
            make_task(
                f"load:{table.target}",
                "load",
                load_table,
                preview_load,
                target_table=str(table.target),
                writes_warehouse=in_warehouse,
                continue_on_error=table.continue_on_error,
                after=after,
                exclusive=_exclusive(a, table),
                table=table,
                sql=sql,
                checks=gates,
                custom_sql=_custom_sql(a, gates),
                pipeline=_pipeline(a, table),
            )
        )
    return tasks


def _pipeline(a: _Assembly, table: TableSpec) -> Pipeline | None:
    """The table's transforms resolved now: its PII key (ETL_PII_KEY), its function, its lookup files and a
    target that can dedupe; a ConfigError names what is missing."""
    spec = table.transforms
    if spec is None:
        return None
    where = f"{a.where}: tables ({table.target})"
    key = pii_key(a.settings.get(PII_KEY_VARIABLE), f"{where}.columns") if spec.needs_key else None
    function = None
    if spec.function:
        function = getattr(a.worker, spec.function, None)
        if not callable(function):
            raise ConfigError(
                f"{where}.transform: {spec.function!r} is not a function in {a.project.folder / WORKER_MODULE}"
            )
    for lookup in spec.lookups:
        if lookup.file and not (a.project.folder / lookup.file).is_file():
            raise ConfigError(
                f"{where}.lookups ({lookup.name}).from.file: file {a.project.folder / lookup.file} not found"
            )
    target_cls = a.connector(table.target_connection or a.project.warehouse)
    if spec.dedupe and not issubclass(target_cls, SqlConnector):
        raise ConfigError(
            f"{where}.dedupe: a {target_cls.kind} target cannot dedupe its staged rows; "
            f"dedupe in the source query (e.g. ROW_NUMBER() OVER (PARTITION BY the keys ORDER BY the cursor DESC))"
        )
    return Pipeline(spec, a.project.folder, key, function)


def _check_target(a: _Assembly, table: TableSpec) -> None:
    """The table's target can be written, with the table's strategy (capabilities are the connector's)."""
    name = table.target_connection or a.project.warehouse
    target_cls = a.connector(name)
    key = f"{a.where}: tables ({table.target}).{'target_connection' if table.target_connection else 'strategy'}"
    if not target_cls.capabilities.write:
        raise ConfigError(f"{key}: a {target_cls.kind} cannot be a load target")
    if table.reconcile and name != a.project.warehouse:
        raise ConfigError(
            f"{a.where}: tables ({table.target}).reconcile: the table loads into {name!r}, not the warehouse; "
            f"reconciliation runs inside the warehouse's load transaction: drop reconcile for this table"
        )
    if table.reconcile and (table.reconcile.sums or table.reconcile.min_max):
        source_cls = a.connector(table.source.connection)
        if not source_cls.capabilities.sql:
            raise ConfigError(
                f"{a.where}: tables ({table.target}).reconcile: a {source_cls.kind} source cannot compute sums or "
                f"ranges; reconcile count only (the rows read) for it"
            )
    if table.strategy is Strategy.MERGE and not target_cls.capabilities.merge:
        raise ConfigError(
            f"{key}: connection {name!r} ({target_cls.kind}) cannot merge; use append, replace or delete_insert"
        )


def _function_tasks(a: _Assembly, section: str) -> list[Task]:
    specs = a.project.before_load if section == "before_load" else a.project.after_load
    return [_function_task(a.project, a.worker, spec, section) for spec in specs]


def _check_tasks(a: _Assembly, only: tuple[str, ...] = ()) -> list[Task]:
    """The checks that are not a load's gate: on tables this run does not load, or naming no table
    (``only``: just the checks on those tables)."""
    loaded = {t.target for t in a.project.tables if t.target_connection in (None, a.project.warehouse)}
    after = tuple(c for c in a.project.checks if c.table is None or c.table not in loaded)
    if only:
        after = tuple(c for c in after if c.table is not None and str(c.table) in only)
    if not after:
        return []
    return [
        make_task(
            "quality_checks",
            "check",
            run_checks,
            preview_checks,
            writes_warehouse=True,
            checks=after,
            custom_sql=_custom_sql(a, after),
        )
    ]


def _custom_sql(a: _Assembly, checks: tuple[CheckSpec, ...]) -> dict[str, str]:
    return {
        c.name: _read(a.project, a.project.folder, c.options["file"], f"checks ({c.name}).file", None)
        for c in checks
        if c.kind == "custom_sql"
    }


def _aggregation_tasks(a: _Assembly) -> list[Task]:
    tasks = []
    for agg in a.project.aggregations:
        sql = _read(a.project, a.settings.paths.aggregations, agg.file, f"aggregations ({agg.name}).file", a.dialect)
        tasks.append(
            make_task(
                f"aggregate:{agg.name}",
                "aggregation",
                run_sql_script,
                preview_sql_script,
                writes_warehouse=True,
                connection=a.project.warehouse,
                label=f"aggregation {agg.name}",
                sql=sql,
            )
        )
    return tasks


def _output_tasks(a: _Assembly) -> list[Task]:
    tasks = []
    for out in a.project.outputs:
        sql = _read(a.project, a.project.folder, out.query_file, f"outputs ({out.name}).query", None)
        if out.upload and not a.connector(out.upload).capabilities.upload:
            raise ConfigError(
                f"{a.where}: outputs ({out.name}).upload: a {a.connector(out.upload).kind} cannot receive files"
            )
        tasks.append(
            make_task(
                f"output:{out.name}",
                "output",
                write_output,
                preview_output,
                name=out.name,
                connection=out.connection,
                sql=sql,
                delete_after_run=out.delete_after_run,
                upload=out.upload,
            )
        )
    return tasks


def resolve_connections(project: ProjectConfig, settings: Settings) -> dict[str, Secret]:
    """Each declared connection's URL: ``ETL_CONN_<NAME>``, else its sqlite default, else (for the
    warehouse) the embedded SQLite file. A connection with neither is a ConfigError naming the variable."""
    urls: dict[str, Secret] = {}
    for name, spec in project.connections.items():
        url = settings.connection_url(name)
        if url is None and spec.default_url:
            url = Secret(spec.default_url)
        if url is None and name == project.warehouse:
            url = Secret(DEFAULT_WAREHOUSE_URL)
        if url is None:
            raise ConfigError(
                f"project {project.name}: connection {name!r} has no URL; set {connection_variable(name)} "
                f"(e.g. postgresql://user@host:5432/db) in the environment or in .env"
            )
        connector_class(scheme_of(url.reveal()))  # an unknown scheme fails here, before anything connects
        urls[name] = url
    return urls


def _read(project: ProjectConfig, base: Path, relative: str, where: str, dialect: str | None) -> str:
    """The text of ``base/relative``; with ``dialect``, ``name.<dialect>.sql`` wins over ``name.sql``."""
    path = base / relative
    if dialect is not None:
        specific = path.with_name(f"{path.stem}.{dialect}{path.suffix}")
        if specific.is_file():
            path = specific
    if not path.is_file():
        raise ConfigError(f"{project.folder / 'project.yml'}: {where}: file {path} not found")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{project.folder / 'project.yml'}: {where}: cannot read {path}: {exc}") from None


def _worker_module(project: ProjectConfig) -> ModuleType:
    path = project.folder / WORKER_MODULE
    if not path.is_file():
        raise ConfigError(f"{project.folder / 'project.yml'}: functions are listed but {path} does not exist")
    module_name = f"customer_code.{project.name}.script_worker"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the customer's module failed to import: report it as config
        sys.modules.pop(module_name, None)
        raise ConfigError(f"{path}: cannot be imported: {type(exc).__name__}: {exc}") from exc
    return module


def _function_task(project: ProjectConfig, worker: ModuleType | None, spec: FunctionSpec, section: str) -> Task:
    assert worker is not None
    where = f"{project.folder / 'project.yml'}: {section} ({spec.task_name})"
    function: Callable[..., Any] | None = getattr(worker, spec.function, None)
    if not callable(function):
        raise ConfigError(f"{where}.function: {spec.function!r} is not a function in {project.folder / WORKER_MODULE}")
    try:
        inspect.signature(function).bind(None, **spec.params)
    except TypeError as exc:
        raise ConfigError(f"{where}.params: {exc}") from None
    return make_task(f"{section}:{spec.task_name}", "function", call_function, function=function, params=spec.params)
