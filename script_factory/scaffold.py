"""A new project in one command (``script_runner.py --new``): the source's catalog -> project.yml and launchers.

:func:`plan_new_project` reads the source's catalog (tables, primary keys, column types) and decides each
table's strategy, keys and cursor; :func:`render_project` writes that down as a commented project.yml,
validated by the project model before anything is written; :func:`write_new_project` writes the project,
its four launchers and the connection URLs (into the ETL home's ``.env``, never into a tracked file), all
or nothing. No DDL is written: a missing target table is created from the source's columns on the first run.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from connectors import connector_class, open_connector, scheme_of
from connectors.base import Connector, ReadRequest, TableName
from script_factory.config import parse_project
from script_factory.config_specs import IDENTIFIER, NAME
from script_factory.settings import (
    REPO_ROOT,
    WAREHOUSE_CONNECTION,
    Settings,
    connection_variable,
    read_env_file,
    secret_values,
)
from utilities.errors import ConfigError, EtlError
from utilities.secrets import Masker, Secret

#: Column names taken as the cursor (case-insensitive), best first; the column must be a timestamp.
CURSOR_NAMES = ("updated_at", "modified", "modified_at", "last_update", "last_modified", "changed_at")
SHOWN_TABLES = 10  # how many of the source's tables a "not found" message lists
_TABLE_TEXT = re.compile(rf"^{IDENTIFIER.pattern[1:-1]}(?:\.{IDENTIFIER.pattern[1:-1]})?$")

Connect = Callable[[str, Secret, Path, Mapping[str, str]], Connector]


@dataclass(frozen=True)
class NewProjectRequest:
    """What ``--new`` asked for: the project's name, the source URL and tables, an optional warehouse URL."""

    name: str
    source_url: Secret
    tables: tuple[TableName, ...]
    warehouse_url: Secret | None = None
    connection: str | None = None  # the source connection's name (default: <name>_source)


@dataclass(frozen=True)
class TablePlan:
    """One table of the new project: where it comes from, where it goes, how it is applied."""

    source: TableName
    target: TableName
    keys: tuple[str, ...]
    cursor: str | None
    notes: tuple[str, ...] = ()  # comment lines written under the table in project.yml


@dataclass(frozen=True)
class NewProject:
    """Everything ``--new`` writes: the project, its connections and the variables that hold their URLs."""

    name: str
    connection: str
    warehouse: str  # the project's warehouse connection (the shared "warehouse" or <name>_warehouse)
    tables: tuple[TablePlan, ...]
    variables: Mapping[str, Secret] = field(default_factory=dict)  # to add to .env (not there yet)


def parse_tables(text: str) -> tuple[TableName, ...]:
    """``'erp.orders, erp.customers'`` -> table names, each once, in order; ConfigError for a bad one."""
    names: list[TableName] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if not _TABLE_TEXT.match(part):
            raise ConfigError(
                f"--tables: {part!r} is not a table name; give schema.table or table names separated by commas, "
                "e.g. --tables 'erp.orders,erp.customers'"
            )
        schema, _, name = part.rpartition(".")
        table = TableName(name, schema or None)
        if table not in names:
            names.append(table)
    if not names:
        raise ConfigError("--tables is empty; give the source's tables, e.g. --tables 'erp.orders,erp.customers'")
    return tuple(names)


def check_new_request(request: NewProjectRequest, settings: Settings) -> NewProject:
    """The project's connections and the ``.env`` variables to add; ConfigError (before anything connects)
    for a project or launcher that exists, a name too long, an unknown scheme or a conflicting variable."""
    name = request.name
    folder = settings.paths.projects / name
    if folder.exists() or folder.is_symlink():
        raise ConfigError(f"--new {name}: project {name!r} already exists ({folder}); choose another name")
    for path in launcher_paths(settings.paths.home, name):
        if path.exists() or path.is_symlink():
            raise ConfigError(f"--new {name}: {path} already exists; remove it or choose another name")
    connection = request.connection or f"{name}_source"
    for what, value in (("--connection", connection), ("--new", f"{name}_warehouse")):
        if not NAME.fullmatch(value):
            raise ConfigError(
                f"{what}: {value!r} is not a connection name (lower-case letters, digits and '_', starting with a "
                "letter, at most 63 characters); give a shorter project name or --connection NAME"
            )
    _check_scheme(request.source_url, "--source", writable=False)
    variables: dict[str, Secret] = {}
    _add_variable(variables, connection, request.source_url, settings)
    warehouse = WAREHOUSE_CONNECTION
    if request.warehouse_url is not None:
        _check_scheme(request.warehouse_url, "--warehouse", writable=True)
        shared = settings.get(connection_variable(WAREHOUSE_CONNECTION))
        if shared != request.warehouse_url.reveal():  # the shared warehouse is left to the other projects
            warehouse = f"{name}_warehouse"
            if warehouse == connection:
                raise ConfigError(f"--connection {connection}: that name is the project's warehouse; choose another")
            _add_variable(variables, warehouse, request.warehouse_url, settings)
    return NewProject(name, connection, warehouse, (), variables)


def _check_scheme(url: Secret, option: str, *, writable: bool) -> None:
    try:
        kind = connector_class(scheme_of(url.reveal()))
    except ConfigError as exc:
        raise ConfigError(f"{option}: {exc}") from None
    if writable and not kind.capabilities.write:
        raise ConfigError(f"{option}: a {kind.kind} connection cannot be a warehouse; give a PostgreSQL URL")


def _add_variable(variables: dict[str, Secret], connection: str, url: Secret, settings: Settings) -> None:
    """Add ``ETL_CONN_<connection>`` unless ``.env`` already holds this URL; refuse another value."""
    variable = connection_variable(connection)
    env_file = settings.paths.home / ".env"
    in_file = read_env_file(env_file).get(variable) if env_file.is_file() else None
    current = settings.get(variable)
    if in_file not in (None, "") and in_file != url.reveal():
        raise ConfigError(
            f"{variable} is already in {env_file} with another URL; remove that line, give the same URL, "
            f"or choose another connection name with --connection NAME"
        )
    if current is not None and current != url.reveal():
        raise ConfigError(
            f"{variable} is already set in the environment to another URL (it would win over .env); "
            f"unset it, give the same URL, or choose another connection name with --connection NAME"
        )
    if in_file != url.reveal():
        variables[variable] = url


# -- the source's catalog -> tables ------------------------------------------------------------------------


def plan_new_project(request: NewProjectRequest, settings: Settings, connect: Connect = open_connector) -> NewProject:
    """Read the source's catalog and decide each table's target, strategy, keys and cursor.

    ConfigError (exit 2) for a table the source does not have, naming it and a few that exist; the
    connector's own errors (TransientError, FatalError) for a source that cannot be read."""
    project = check_new_request(request, settings)
    source = connect(project.connection, request.source_url, settings.paths.home, settings.variables)
    try:
        _check_tables_exist(source, request.tables)
        targets = _target_names(request.tables)
        tables = tuple(_table_plan(source, table, targets[table]) for table in request.tables)
    finally:
        source.close()
    return NewProject(project.name, project.connection, project.warehouse, tables, project.variables)


def _check_tables_exist(source: Connector, tables: Iterable[TableName]) -> None:
    listed: dict[str | None, list[TableName]] = {}
    for table in tables:
        if table.schema not in listed:
            listed[table.schema] = source.list_tables(table.schema)
        existing = listed[table.schema]
        if table in existing:
            continue
        where = f"schema {table.schema}" if table.schema else "the source's default schema"
        same = [t for t in existing if t.name.lower() == table.name.lower()]
        if same:
            hint = f"names are case-sensitive: did you mean {same[0]}?"
        elif existing:
            shown = ", ".join(str(t) for t in existing[:SHOWN_TABLES])
            more = f" and {len(existing) - SHOWN_TABLES} more" if len(existing) > SHOWN_TABLES else ""
            hint = f"tables in {where}: {shown}{more}"
        else:
            hint = f"{where} has no tables (or does not exist); check the schema name"
        raise ConfigError(f"--tables: table {table} not found in the source; {hint}")


def _target_names(tables: tuple[TableName, ...]) -> dict[TableName, TableName]:
    """The warehouse table of each source table: its bare name, or ``<schema>_<name>`` when two share one."""
    counts: dict[str, int] = {}
    for table in tables:
        counts[table.name.lower()] = counts.get(table.name.lower(), 0) + 1
    targets: dict[TableName, TableName] = {}
    for table in tables:
        name = table.name if counts[table.name.lower()] == 1 else f"{table.schema or 'default'}_{table.name}"
        if not IDENTIFIER.fullmatch(name):
            raise ConfigError(f"--tables: {table} would load into {name!r}, longer than 63 characters; list it alone")
        targets[table] = TableName(name)
    return targets


def _table_plan(source: Connector, table: TableName, target: TableName) -> TablePlan:
    import sqlalchemy.types as sat

    columns = source.describe_columns(ReadRequest(table=table))
    notes: list[str] = []
    keys = source.primary_key(table)
    odd = [k for k in keys if not IDENTIFIER.fullmatch(k)]
    if odd:
        notes.append(
            f"The primary key ({', '.join(keys)}) has a column project.yml cannot name ({odd[0]!r}), so each run "
            "reloads the table. To merge, select the columns under plain names in a query (query: sql/<file>.sql)."
        )
        keys = ()
    elif not keys:
        notes.append(
            "The source table has no primary key, so each run empties this table and reloads it. To merge "
            "instead, give the columns that identify a row: strategy: merge, keys: [<column>, ...]"
        )
    by_name = {c.name.lower(): c for c in columns if IDENTIFIER.fullmatch(c.name)}
    cursor = None
    for candidate in CURSOR_NAMES:
        column = by_name.get(candidate)
        if column is not None and isinstance(column.type, sat.DateTime):
            cursor = column
            break
    if keys and cursor is None:
        notes.append(
            f"No cursor: no timestamp column named {', '.join(CURSOR_NAMES)} was found, so every run reads the "
            "whole table. To read only the rows changed since the last run, name a timestamp (or increasing) "
            "column the source sets on every change: cursor: <column>"
        )
    elif keys and cursor is not None and cursor.nullable:
        notes.append(
            f"{cursor.name} may be NULL in the source: an incremental run skips such rows (a full load, F, loads them)."
        )
    return TablePlan(table, target, tuple(keys), cursor.name if keys and cursor else None, tuple(notes))


# -- project.yml ---------------------------------------------------------------------------------------------

_COMMENT_AT = 41  # the column where end-of-line comments start, as in sales_demo's project.yml


def _line(text: str, comment: str = "") -> str:
    return f"{text.ljust(_COMMENT_AT - 1)} # {comment}" if comment else text


def render_project(project: NewProject) -> str:
    """The commented project.yml of ``project`` (names only: no URL, no credential)."""
    name = project.name
    shown = ", ".join(str(t.source) for t in project.tables[:3])
    more = f" and {len(project.tables) - 3} more" if len(project.tables) > 3 else ""
    lines = [
        "# yaml-language-server: $schema=../project.schema.json",
        "# Written by script_runner.py --new from the source's catalog; edit it freely.",
        f"# Run it with script_runner/{name}.sh (F for a full load first, then with no argument for I).",
        _line(f"project: {name}", "must equal the folder name"),
        f"description: Tables {shown}{more} from {project.connection}",
        "",
        "# Connections are names only; their URLs (and any credentials) are in the ETL home's .env as",
        "# ETL_CONN_<NAME>, never in this file.",
    ]
    if project.warehouse != WAREHOUSE_CONNECTION:
        lines.append(_line(f"warehouse: {project.warehouse}", connection_variable(project.warehouse)))
    else:
        lines.append(
            "# The warehouse is ETL_CONN_WAREHOUSE, or the embedded SQLite file metadata/warehouse.db when unset."
        )
    lines += [
        "connections:",
        _line(f"  {project.connection}: {{}}", connection_variable(project.connection)),
        "",
        "incremental:",
        _line("  initial_start: 1900-01-01", "the first incremental window starts here"),
        _line("  lookback: 0", "re-read this much before the watermark (e.g. 2h) for late rows"),
        _line("  timezone: UTC", "the zone of naive source timestamps"),
        "",
        "# Each target table is created on the first run from the source's columns and types (primary key",
        "# from keys, an index on cursor); no DDL file is needed.",
        "tables:",
    ]
    for table in project.tables:
        lines += _table_lines(project.connection, table)
    return "\n".join(lines) + "\n"


def _table_lines(connection: str, table: TablePlan) -> list[str]:
    lines = [
        f"  - target: {table.target}",
        f"    source: {{connection: {connection}, table: {table.source}}}",
    ]
    if table.keys:
        lines.append(_line("    strategy: merge", "on the source's primary key"))
        lines.append(f"    keys: [{', '.join(table.keys)}]")
    else:
        lines.append(_line("    strategy: replace", "no usable primary key: see below"))
    if table.cursor:
        lines.append(_line(f"    cursor: {table.cursor}", "incremental (I) runs read rows changed after the last"))
    for note in table.notes:
        lines += [f"    # {part}" for part in _wrap(note, 94)]
    return lines


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def validate_project(text: str, folder: Path) -> None:
    """Validate the project.yml ``text`` of ``folder`` with the project model (ConfigError if invalid)."""
    import yaml

    parse_project(yaml.safe_load(text), folder, folder / "project.yml")


# -- launchers -------------------------------------------------------------------------------------------


def launcher_paths(home: Path, name: str) -> list[Path]:
    """The launchers of project ``name`` under ``home/script_runner/``."""
    folder = home / "script_runner"
    return [folder / f"{name}{suffix}" for suffix in (".sh", ".bat", "_docker.sh", "_docker.bat")]


def render_launchers(home: Path, name: str) -> dict[Path, str]:
    """The launchers of ``name``, as sales_demo's: thin wrappers of the shared ``_launch``/``_docker`` bodies.

    When ``home`` is not the runner's own folder (ETL_HOME elsewhere, without ``script_runner/_launch.sh``),
    the .sh and .bat launchers set ETL_HOME to their home and call the runner's bodies by absolute path; the
    Docker launchers are then left out (they mount the runner's own customer_code/, not this home's).
    """
    sh, bat, docker_sh, docker_bat = launcher_paths(home, name)
    usage = "[I|F] [START] [END] [--dry-run|--check]"
    if (home / "script_runner" / "_launch.sh").is_file():
        return {
            sh: (
                f"#!/usr/bin/env sh\n# {name} launcher: {name}.sh {usage}\n"
                f'exec "$(dirname "$0")/_launch.sh" {name} "$@"\n'
            ),
            bat: _bat(name, usage, '"%~dp0_launch.bat"', ""),
            docker_sh: (
                f"#!/usr/bin/env sh\n# {name} inside Docker: {name}_docker.sh {usage}\n"
                f'exec "$(dirname "$0")/_docker.sh" {name} "$@"\n'
            ),
            docker_bat: _bat(
                name, usage, '"%~dp0_docker.bat"', "", f"{name} inside Docker on Windows: {name}_docker.bat"
            ),
        }
    runner = REPO_ROOT / "script_runner"
    return {
        sh: (
            f"#!/usr/bin/env sh\n# {name} launcher: {name}.sh {usage}\n"
            f"# The project lives in this ETL home; the runner in {REPO_ROOT}.\n"
            'ETL_HOME=$(cd "$(dirname "$0")/.." && pwd)\nexport ETL_HOME\n'
            f'exec {_sh_quote(str(runner / "_launch.sh"))} {name} "$@"\n'
        ),
        bat: _bat(name, usage, f'"{runner / "_launch.bat"}"', 'set "ETL_HOME=%~dp0.."\n'),
    }


def _bat(name: str, usage: str, launch: str, env: str, header: str = "") -> str:
    """A .bat launcher calling ``launch`` (``_launch.bat`` or ``_docker.bat``): exit code and double-click pause."""
    return _crlf(
        f"@echo off\n"
        f"rem {header or f'{name} launcher for Windows: {name}.bat'} {usage}\n"
        'rem Double-clicked (started by "cmd /c" with no arguments), the window stays open on failure for up\n'
        "rem to 5 minutes or until a key is pressed. Schedulers pass the load type (see the README's schtasks\n"
        "rem line), so under Task Scheduler nothing ever waits; the exit code is passed on either way.\n"
        "setlocal\n"
        f"{env}"
        'set "ETL_EXIT_CODE="\n'
        f"call {launch} {name} %*\n"
        'set "RC=%ERRORLEVEL%"\n'
        'if defined ETL_EXIT_CODE set "RC=%ETL_EXIT_CODE%"\n'
        'if not "%RC%"=="0" if "%~1"=="" echo %CMDCMDLINE% | find /i "/c" >nul && timeout /t 300\n'
        "exit /b %RC%\n"
    )


def _crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# -- .env ------------------------------------------------------------------------------------------------


def env_assignment(variable: str, value: Secret) -> str:
    """``VARIABLE=value`` as a .env line that reads back as exactly ``value`` (single-quoted when it holds
    characters python-dotenv would read otherwise); ConfigError when no form reads back exactly."""
    import io

    from dotenv import dotenv_values

    raw = value.reveal()
    plain = not re.search(r"[\s#'\"\\$`]", raw)
    forms = [f"{variable}={raw}"] if plain else []
    if "'" not in raw and "\n" not in raw:
        forms.append(f"{variable}='{raw}'")
    for form in forms:
        if dotenv_values(stream=io.StringIO(form + "\n")).get(variable) == raw:
            return form
    raise ConfigError(
        f"{variable}: the URL holds characters a .env line cannot carry as they are (quotes with a backslash, "
        "or ${...}, which .env files expand); percent-encode them in the URL (e.g. %24 for $, %27 for ') and run again"
    )


# -- writing, all or nothing -----------------------------------------------------------------------------


@dataclass
class _Undo:
    """What :func:`write_new_project` did so far, to undo it should a later step fail."""

    created: list[Path] = field(default_factory=list)
    restore: dict[Path, bytes] = field(default_factory=dict)

    def rollback(self) -> None:
        import shutil

        for path in reversed(self.created):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for path, data in self.restore.items():
            _replace_file(path, data, _mode(path))


def write_new_project(project: NewProject, settings: Settings) -> list[Path]:
    """Write project.yml (validated first), the launchers and the ``.env`` lines; returns the paths written.

    Each file is written under a temporary name and renamed into place; if any step fails, what was
    written is removed and ``.env`` is restored (an OSError then becomes a ConfigError: exit 2)."""
    home = settings.paths.home
    folder = settings.paths.projects / project.name
    text = render_project(project)
    validate_project(text, folder)
    launchers = render_launchers(home, project.name)
    undo = _Undo()
    written: list[Path] = []
    try:
        settings.paths.projects.mkdir(parents=True, exist_ok=True)
        staging = settings.paths.projects / f".{project.name}.new-{os.getpid()}"
        staging.mkdir()
        undo.created.append(staging)
        (staging / "project.yml").write_bytes(text.encode("utf-8"))
        os.rename(staging, folder)  # fails if the folder appeared meanwhile
        undo.created[-1] = folder
        written.append(folder / "project.yml")
        for path, body in launchers.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            mode = 0o755 if path.suffix == ".sh" else 0o644
            _new_file(path, body.encode("utf-8"), mode, undo)
            written.append(path)
        if project.variables:
            env_file = home / ".env"
            written.append(_append_env(env_file, project, undo))
    except OSError as exc:  # a folder not writable, a file where a folder belongs, a full disk...
        undo.rollback()
        where = exc.filename or home
        raise ConfigError(
            f"--new {project.name}: cannot write {where}: {exc.strerror or exc}; nothing was written "
            "(fix the folder's permissions or free space, then run again)"
        ) from None
    except BaseException:
        undo.rollback()
        raise
    return written


def _new_file(path: Path, data: bytes, mode: int, undo: _Undo) -> None:
    """Write ``path``, which must not exist, through a temporary file in the same folder."""
    temporary = path.with_name(f".{path.name}.new-{os.getpid()}")
    _write(temporary, data, mode)
    undo.created.append(temporary)
    os.link(temporary, path)  # fails if the file appeared meanwhile (never overwrites)
    undo.created.append(path)
    temporary.unlink()


def _append_env(env_file: Path, project: NewProject, undo: _Undo) -> Path:
    """Add the project's ``ETL_CONN_*`` lines to ``.env`` (created readable by its owner only)."""
    lines = [f"# {project.name}: connections written by script_runner.py --new"]
    lines += [env_assignment(variable, url) for variable, url in project.variables.items()]
    if env_file.is_file():
        before = env_file.read_bytes()
        undo.restore[env_file] = before
        separator = b"" if not before or before.endswith(b"\n") else b"\n"
        _replace_file(env_file, before + separator + ("\n".join(lines) + "\n").encode("utf-8"), _mode(env_file))
    else:
        _replace_file(env_file, ("\n".join(lines) + "\n").encode("utf-8"), 0o600)
        undo.created.append(env_file)
    return env_file


def _mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o600


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.new-{os.getpid()}")
    try:
        _write(temporary, data, mode)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (which must not exist) holding ``data``; removed again if writing it fails."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)  # the process umask does not narrow or widen it
    except BaseException:
        path.unlink(missing_ok=True)
        raise


# -- the report --------------------------------------------------------------------------------------------


def report_lines(project: NewProject, written: list[Path], settings: Settings, *, windows: bool) -> list[str]:
    """What was written (paths relative to the home; URLs masked) and the commands to run next."""
    home = settings.paths.home
    masker = Masker()
    lines = [f"new project {project.name}:"]
    for table in project.tables:
        how = f"merge on {', '.join(table.keys)}" if table.keys else "replace (no primary key)"
        cursor = f", cursor {table.cursor}" if table.cursor else ", no cursor (reads the whole table)"
        lines.append(f"  {table.target}  <- {project.connection}: {table.source}  ({how}{cursor})")
    for path in written:
        shown = path.relative_to(home) if path.is_relative_to(home) else path
        lines.append(f"  wrote {shown}")
        if path.name == ".env":
            lines += [f"    {masker(env_assignment(v, u))}" for v, u in project.variables.items()]
    sh = home / "script_runner" / f"{project.name}.sh"
    if not (home / "script_runner" / "_launch.sh").is_file():
        lines.append("  (no _docker launchers: they mount the runner's own customer_code/, not this home's)")
    launcher = sh.with_suffix(".bat") if windows else sh
    shown_launcher = launcher.relative_to(home) if launcher.is_relative_to(home) else launcher
    lines += [
        "next:",
        f"  {shown_launcher} --dry-run      # see what a run would do",
        f"  {shown_launcher} F              # the first, full load (creates the target tables)",
    ]
    return lines


def create_project(request: NewProjectRequest, settings: Settings, *, windows: bool = False) -> list[str]:
    """``--new``: plan, write, and return the report's lines; raises ConfigError or the connector's error."""
    try:
        project = plan_new_project(request, settings)
    except ConfigError:
        raise
    except EtlError as exc:  # the source could not be read: a bad --source, for the operator to fix
        masker = Masker(secret_values({connection_variable(request.name): request.source_url.reveal()}))
        raise ConfigError(f"--source: {masker(str(exc))}") from None
    written = write_new_project(project, settings)
    return report_lines(project, written, settings, windows=windows)
