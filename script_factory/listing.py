"""``--list``: the projects and their tables, from a light read of each project.yml.

Listing must start fast, so it reads the YAML and only the keys it shows (``project``, ``description``,
``schedule``, ``depends_on``, and each table's target, source and strategy, ``defaults:`` merged as the full model
merges them) without building the pydantic model. A file the light read does not fully understand
(a pattern entry, an unknown strategy, a misspelt key it shows, a YAML error...) goes through the full
validation instead, which lists it as invalid with the reason, exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from utilities.errors import ConfigError

STRATEGIES = ("append", "merge", "replace", "delete_insert")  # config_models.Strategy, checked by test_listing
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_TABLE = re.compile(rf"^{_IDENTIFIER}(?:\.{_IDENTIFIER})?$")
_SHOWN_SOURCE_KEYS = ("connection", "query", "table")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # config_specs.NAME


def project_names(projects: Path) -> list[str]:
    """The folders of ``projects`` (``customer_code/``) that hold a project.yml."""
    if not projects.is_dir():
        return []
    return sorted(p.name for p in projects.iterdir() if (p / "project.yml").is_file())


def listing(projects: Path, names: list[str], full: Callable[[str], str]) -> str:
    """One block per project; ``full(name)`` renders a project the light read leaves to the full validation."""
    blocks = [_light(projects / name / "project.yml", name) or full(name) for name in names]
    return "\n".join(blocks) if blocks else f"no projects in {projects}"


def _light(file: Path, folder: str) -> str | None:
    """The project's block, or None when only the full validation can say what the file means."""
    raw = _read(file)
    if not isinstance(raw, dict) or raw.get("project") != folder:
        return None
    description, schedule, tables = raw.get("description", ""), raw.get("schedule"), raw.get("tables")
    if not isinstance(description, str) or not (schedule is None or isinstance(schedule, str)):
        return None
    if not isinstance(tables, list) or not tables:
        return None
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        return None
    upstreams = _upstreams(raw.get("depends_on"))
    if upstreams is None:
        return None
    lines = [f"{folder}  {description.strip()}".rstrip() + (f"  [schedule {schedule.strip()}]" if schedule else "")]
    if upstreams:
        lines.append(f"  depends on: {', '.join(upstreams)}")
    for entry in tables:
        line = _table_line(entry, defaults)
        if line is None:
            return None
        lines.append(line)
    return "\n".join(lines)


def _upstreams(value: Any) -> list[str] | None:
    """``depends_on`` as shown (``staging_erp (max_age 6h)``), [] when absent, None when only the full
    validation can say what it means."""
    if value is None:
        return []
    if not isinstance(value, list):
        return None
    shown = []
    for item in value:
        if not isinstance(item, dict) or not set(item) <= {"project", "max_age"}:
            return None
        name, age = item.get("project"), item.get("max_age")
        if not isinstance(name, str) or not _NAME.match(name) or not (age is None or isinstance(age, str)):
            return None
        shown.append(f"{name} (max_age {age.strip()})" if age else name)
    return shown


def _read(file: Path) -> Any:
    import yaml

    try:
        text = file.read_bytes().decode("utf-8").removeprefix("\ufeff")
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the full validation names the line and what is wrong


def _table_line(entry: Any, defaults: dict[str, Any]) -> str | None:
    if not isinstance(entry, dict):
        return None
    table = {**defaults, **entry}
    source = table.get("source")
    if isinstance(defaults.get("source"), dict) and isinstance(entry.get("source"), dict):
        shared = {k: v for k, v in defaults["source"].items() if k not in ("query", "table", "tables")}
        source = {**shared, **entry["source"]}
    target, strategy = table.get("target"), table.get("strategy")
    if not isinstance(target, str) or not _TABLE.match(target.strip()) or strategy not in STRATEGIES:
        return None
    if not isinstance(source, dict) or "tables" in source or any(value is None for value in source.values()):
        return None  # a pattern entry, or a null the model reads as absent
    connection, query, name = (source.get(key) for key in _SHOWN_SOURCE_KEYS)
    if not all(value is None or (isinstance(value, str) and value.strip()) for value in (connection, query, name)):
        return None
    if connection is None or (query is not None and name is not None):
        return None
    shown = (
        query.strip().replace("\\", "/")
        if query
        else name.strip()
        if name
        else {k: v for k, v in source.items() if k not in _SHOWN_SOURCE_KEYS}
    )
    return f"  {target.strip()}  <- {connection.strip()}: {shown}  ({strategy})"


def full_entry(name: str, load: Callable[[str], Any]) -> str:
    """A project's block through the full validation (``load`` is factory.load_project_config)."""
    try:
        project = load(name)
    except ConfigError as exc:
        return f"{name}  (invalid: {exc})"
    lines = [
        f"{name}  {project.description}".rstrip() + (f"  [schedule {project.schedule}]" if project.schedule else "")
    ]
    if project.depends_on:
        shown = [
            f"{u.project} (max_age {_age(u.max_age.total_seconds())})" if u.max_age is not None else u.project
            for u in project.depends_on
        ]
        lines.append(f"  depends on: {', '.join(shown)}")
    for table in project.tables:
        source = table.source.query_file or table.source.table or table.source.pattern or dict(table.source.options)
        lines.append(f"  {table.target}  <- {table.source.connection}: {source}  ({table.strategy.value})")
    return "\n".join(lines)


def _age(seconds: float) -> str:
    """A max_age as project.yml writes it (``6h``, ``1d``, ``90m``, ``45s``)."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"
