"""The script factory: project.yml + SQL files + script_worker.py -> an ordered tuple of tasks.

It validates everything that can be validated without a database (the config, every file, every
function and its parameters, every connection's URL and connector) and does no database I/O.
Task order: warehouse DDL, before_load functions, table loads (as listed), after_load functions,
quality checks, aggregations, outputs.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from connectors import connector_class, scheme_of
from connectors.base import Connector
from connectors.sql import SqlConnector
from script_factory.config import FunctionSpec, ProjectConfig, load_project
from script_factory.request import RunRequest
from script_factory.settings import DEFAULT_WAREHOUSE_URL, Settings, connection_variable
from script_factory.steps.checks import preview_checks, run_checks
from script_factory.steps.function import call_function
from script_factory.steps.load import load_table, preview_load
from script_factory.steps.migrations import DdlFile, apply_ddl, preview_ddl
from script_factory.steps.output import preview_output, write_output
from script_factory.steps.sql_script import preview_sql_script, run_sql_script
from script_factory.task import Task
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


def project_names(settings: Settings) -> list[str]:
    """The folders of ``customer_code/`` that hold a project.yml."""
    root = settings.paths.projects
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "project.yml").is_file())


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
    return load_project(folder)


def build_plan(request: RunRequest, settings: Settings) -> Plan:
    """Assemble the tasks of ``request.project``; raises ConfigError before anything connects."""
    project = load_project_config(request.project, settings)
    check_requested_start(request.start_date, request.end_date, utc_now(), zone(project.timezone))
    urls = resolve_connections(project, settings)
    if project.email is not None:
        from script_factory.report import smtp_settings

        smtp_settings(settings)  # a missing ETL_SMTP_* variable fails now, not after the loads
    warehouse_scheme = scheme_of(urls[project.warehouse].reveal())
    warehouse_cls = connector_class(warehouse_scheme)
    if not warehouse_cls.capabilities.write:
        raise ConfigError(
            f"the warehouse connection {project.warehouse!r} ({warehouse_cls.kind}) cannot be a load target; "
            f"set ETL_CONN_{project.warehouse.upper()} to a PostgreSQL, SQLite or MariaDB URL"
        )
    if not issubclass(warehouse_cls, SqlConnector):
        raise ConfigError(
            f"the warehouse connection {project.warehouse!r} is a {warehouse_cls.kind}; the warehouse keeps the "
            f"audit tables and must be a SQL database (PostgreSQL, SQLite, MariaDB); load into {warehouse_cls.kind} "
            f"with target_connection: on a table instead"
        )
    dialect = "postgresql" if warehouse_scheme == "postgres" else warehouse_scheme
    folder = project.folder
    worker = _worker_module(project) if project.before_load or project.after_load else None
    tasks: list[Task] = []
    if project.ddl:
        files = tuple(
            DdlFile(name, _read(project, settings.paths.warehouse_ddl, name, f"ddl ({name})", dialect))
            for name in project.ddl
        )
        tasks.append(
            Task("warehouse_ddl", "ddl", partial(apply_ddl, files=files), preview=partial(preview_ddl, files=files))
        )
    tasks += [_function_task(project, worker, spec, "before_load") for spec in project.before_load]
    for table in project.tables:
        source_cls = _connector_class(urls, table.source.connection)
        where = f"tables ({table.target}).source"
        if not source_cls.capabilities.read:
            raise ConfigError(f"{folder / 'project.yml'}: {where}.connection: a {source_cls.kind} cannot be read from")
        if source_cls.capabilities.sql and not (table.source.query_file or table.source.table):
            raise ConfigError(f"{folder / 'project.yml'}: {where}: expected query (a .sql file) or table")
        source_cls.validate_source(table.source.options, f"{folder / 'project.yml'}: {where}")
        target_cls = _connector_class(urls, table.target_connection or project.warehouse)
        if not target_cls.capabilities.write:
            raise ConfigError(
                f"{folder / 'project.yml'}: tables ({table.target}).target_connection: "
                f"a {target_cls.kind} cannot be a load target"
            )
        sql = (
            _read(project, folder, table.source.query_file, f"{where}.query", None) if table.source.query_file else None
        )
        bound = {"table": table, "sql": sql}
        tasks.append(
            Task(
                f"load:{table.target}",
                "load",
                partial(load_table, **bound),
                target_table=str(table.target),
                preview=partial(preview_load, **bound),
            )
        )
    tasks += [_function_task(project, worker, spec, "after_load") for spec in project.after_load]
    if project.checks:
        custom = {
            c.name: _read(project, folder, c.options["file"], f"checks ({c.name}).file", None)
            for c in project.checks
            if c.kind == "custom_sql"
        }
        bound_checks = {"checks": project.checks, "custom_sql": custom}
        tasks.append(
            Task(
                "quality_checks",
                "check",
                partial(run_checks, **bound_checks),
                preview=partial(preview_checks, **bound_checks),
            )
        )
    for agg in project.aggregations:
        sql = _read(project, settings.paths.aggregations, agg.file, f"aggregations ({agg.name}).file", dialect)
        bound_agg = {"connection": project.warehouse, "label": f"aggregation {agg.name}", "sql": sql}
        tasks.append(
            Task(
                f"aggregate:{agg.name}",
                "aggregation",
                partial(run_sql_script, **bound_agg),
                preview=partial(preview_sql_script, **bound_agg),
            )
        )
    for out in project.outputs:
        sql = _read(project, folder, out.query_file, f"outputs ({out.name}).query", None)
        bound_out = {
            "name": out.name,
            "connection": out.connection,
            "sql": sql,
            "delete_after_run": out.delete_after_run,
            "upload": out.upload,
        }
        if out.upload and not _connector_class(urls, out.upload).capabilities.upload:
            raise ConfigError(
                f"{folder / 'project.yml'}: outputs ({out.name}).upload: "
                f"a {_connector_class(urls, out.upload).kind} cannot receive files"
            )
        tasks.append(
            Task(
                f"output:{out.name}",
                "output",
                partial(write_output, **bound_out),
                preview=partial(preview_output, **bound_out),
            )
        )
    return Plan(project=project, tasks=tuple(tasks), connection_urls=urls)


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


def _connector_class(urls: Mapping[str, Secret], name: str) -> type[Connector]:
    return connector_class(scheme_of(urls[name].reveal()))


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
    return Task(
        f"{section}:{spec.task_name}", "function", partial(call_function, function=function, params=dict(spec.params))
    )
