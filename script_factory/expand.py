"""Pattern entries of ``tables:`` expanded from the source's catalog into ordinary tables: the one place
where assembling a project reads a database.

A pattern entry (``source: {connection: erp, tables: {schema: erp, include: ['ord*'], exclude: ['*_tmp']}}``)
becomes one table per source table it matches, in the catalog's (sorted) order, at the entry's place in
``tables:``. Each takes the entry's keys; its target is ``target_schema.<target_prefix><source name>``.
A ``merge`` without ``keys:`` takes each table's primary key from the source; a table without one is a
ConfigError naming it (exclude it, or list it on its own with ``keys:``). A table listed on its own
wins over the same target from a pattern. Patterns are shell-style (``*``, ``?``, ``[abc]``) and
case-insensitive. A source that cannot be reached raises its connector's TransientError (tried again
as the project's ``retries:`` say) or FatalError: exit 1, like any failed connection of a run.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TypeVar

from connectors import connector_class, open_connector, scheme_of
from connectors.base import Connector, TableName
from script_factory.config import ProjectConfig, SourceSpec, Strategy, TablePattern, TableSpec
from script_factory.config_specs import IDENTIFIER
from script_factory.retry import retrying
from script_factory.settings import Settings
from utilities.errors import ConfigError
from utilities.secrets import Secret

T = TypeVar("T")


def expand_patterns(project: ProjectConfig, urls: Mapping[str, Secret], settings: Settings) -> ProjectConfig:
    """``project`` with every pattern entry replaced by the tables it matches (unchanged without any)."""
    if not any(t.source.pattern for t in project.tables):
        return project
    listed = {t.target for t in project.tables if t.source.pattern is None}
    tables: list[TableSpec] = []
    origin: dict[TableName, TableSpec] = {}
    connectors: dict[str, Connector] = {}
    try:
        for entry in project.tables:
            if entry.source.pattern is None:
                tables.append(entry)
                continue
            name = entry.source.connection
            if name not in connectors:
                connectors[name] = _catalog(project, entry, urls[name], settings)
            for table in _expand(project, entry, connectors[name]):
                if table.target in listed:
                    continue  # listed on its own: that entry wins
                if table.target in origin:
                    raise ConfigError(
                        f"{_where(project, entry)}: {table.target} is also a target of "
                        f"{describe_pattern(origin[table.target])}; give one of them a target_prefix or target_schema"
                    )
                origin[table.target] = entry
                tables.append(table)
    finally:
        for connector in connectors.values():
            connector.close()
    return replace(project, tables=tuple(tables))


def _catalog(project: ProjectConfig, entry: TableSpec, url: Secret, settings: Settings) -> Connector:
    """The source's connector, refused before connecting when it has no catalog of tables."""
    cls = connector_class(scheme_of(url.reveal()))
    if not cls.capabilities.sql:
        raise ConfigError(
            f"{_where(project, entry)}.source.tables: a {cls.kind} source has no catalog of tables to match; "
            f"list its tables one by one"
        )
    return open_connector(entry.source.connection, url, settings.paths.home, settings.variables)


def _expand(project: ProjectConfig, entry: TableSpec, connector: Connector) -> list[TableSpec]:
    pattern = entry.source.pattern
    assert pattern is not None
    label = f"list the tables of {describe_pattern(entry)}"
    names = _call(project, lambda: connector.list_tables(pattern.schema), label)
    matched = [n for n in names if _matches(n.name, pattern.include) and not _matches(n.name, pattern.exclude)]
    if not matched:
        raise ConfigError(
            f"{_where(project, entry)}.source.tables: no table of connection {entry.source.connection!r} matches "
            f"{pattern} (it has {len(names)} table(s)); check schema, include and exclude"
        )
    bad = [n.name for n in matched if not IDENTIFIER.match(pattern.target_prefix + n.name)]
    if bad:
        raise ConfigError(
            f"{_where(project, entry)}: {', '.join(map(repr, bad))} cannot be target name(s) (letters, digits "
            f"and '_', at most 63 characters): add them to exclude and list them on their own with a target"
        )
    tables = [_table(entry, pattern, name) for name in matched]
    if entry.strategy is Strategy.MERGE and not entry.keys:
        keys = {name: _primary_key(project, connector, name) for name in matched}
        if missing := [str(name) for name in matched if not keys[name]]:
            raise ConfigError(
                f"{_where(project, entry)}: merge needs keys, and {', '.join(missing)} has no primary key in the "
                f"source: give keys:, add it to exclude, or list it on its own with keys:"
            )
        tables = [replace(t, keys=keys[name]) for t, name in zip(tables, matched, strict=True)]
    return tables


def _primary_key(project: ProjectConfig, connector: Connector, table: TableName) -> tuple[str, ...]:
    return _call(project, lambda: connector.primary_key(table), f"read the primary key of {table}")


def _table(entry: TableSpec, pattern: TablePattern, source: TableName) -> TableSpec:
    target = TableName(pattern.target_prefix + source.name, pattern.target_schema)
    return replace(entry, target=target, source=SourceSpec(connection=entry.source.connection, table=source))


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)


def _call(project: ProjectConfig, call: Callable[[], T], label: str) -> T:
    """``call()``, tried again on TransientError as the project's ``retries:`` say; its last error raised."""
    attempt = retrying(call, project.retries, label)
    if attempt.error is not None:
        raise attempt.error
    return attempt.value  # type: ignore[return-value]


def describe_pattern(entry: TableSpec) -> str:
    """``pattern erp: schema erp, include ord*``: how messages, the log and ``--dry-run`` name an entry."""
    return f"pattern {entry.source.connection}: {entry.source.pattern}"


def _where(project: ProjectConfig, entry: TableSpec) -> str:
    return f"{project.folder / 'project.yml'}: tables ({describe_pattern(entry)})"
