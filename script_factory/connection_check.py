"""``--check``: connect to every connection a project uses and report one line each."""

from __future__ import annotations

import time

from connectors import open_connector
from script_factory.factory import Plan
from script_factory.request import RunRequest
from script_factory.settings import Settings, connection_variable
from utilities.errors import ConfigError, EtlError, TransientError

_HINTS = (
    (
        ("password", "authentication", "access denied", "login failed", "invalid_grant", "credentials"),
        "check the user and password (or key) in {var}",
    ),
    (
        ("not installed", "no module named", "driver", "can't open lib"),
        "install the driver: pip install -r requirements-connectors.txt",
    ),
    (
        ("does not exist", "unknown database", "no such", "not found", "nosuchbucket"),
        "check the database, bucket or path named in {var}",
    ),
    (
        (
            "refused",
            "timed out",
            "timeout",
            "could not translate host",
            "name or service not known",
            "unreachable",
            "could not connect",
            "can't connect",
        ),
        "check that the server is running and reachable from here (host, port, firewall, VPN)",
    ),
)


def check_connections(plan: Plan, settings: Settings) -> tuple[list[str], bool]:
    """One line per connection (OK with the server version, or FAILED with the reason and a hint)."""
    project = plan.project
    sources = {t.source.connection for t in project.tables}
    lines: list[str] = []
    all_ok = True
    for name, url in plan.connection_urls.items():
        connector = open_connector(name, url, settings.paths.home, settings.variables)
        role = "warehouse" if name == project.warehouse else ("source" if name in sources else "connection")
        label = f"{name} ({connector.kind}, {role}) {connector.safe_url}"
        started = time.perf_counter()
        try:
            path = getattr(connector, "path", None)
            if role == "source" and path is not None and not path.is_file():
                raise ConfigError(f"file {path} does not exist")
            version = connector.check()
            lines.append(f"OK      {label}: {version} ({(time.perf_counter() - started) * 1000:.0f} ms)")
        except (EtlError, OSError) as exc:
            all_ok = False
            hint = _hint(exc, connection_variable(name))
            lines.append(f"FAILED  {label}: {exc}" + (f"; {hint}" if hint else ""))
        finally:
            connector.close()
    return lines, all_ok


def check_tables(plan: Plan, request: RunRequest, settings: Settings) -> list[str]:
    """One line per table: whether the source describes its columns, and whether the target exists and
    matches, or would be created or evolved; ``WARN`` with what a load would stop on. These lines
    inform: the exit code of ``--check`` stays that of the connections (a table's shape is data, and
    the project's DDL files may still create it)."""
    from script_factory.dry_run import preview_context
    from script_factory.steps.load import table_shape

    loads = [t for t in plan.tasks if t.kind == "load"]
    if not loads:
        return []
    lines: list[str] = []
    with preview_context(plan, request, settings) as (ctx, _):
        for task in loads:
            params = task.bound_parameters()
            table = params["table"]
            try:
                shape = table_shape(ctx, table, params.get("sql"))
                if shape.plan is None:
                    lines.append(f"OK      table {table.target}: {shape.note}")
                else:
                    summary = f"target {shape.plan.table} {shape.plan.summary()}"
                    lines.append(f"OK      table {table.target}: the source describes its columns; {summary}")
            except (EtlError, OSError) as exc:
                lines.append(f"WARN    table {table.target}: the load would stop: {exc}")
    return lines


def _hint(error: BaseException, variable: str) -> str:
    """What to check next, unless the connector's own message already says it."""
    text = str(error).lower()
    for markers, hint in _HINTS:
        if any(marker in text for marker in markers):
            said = hint.startswith("install") and "install" in text or hint[:24].lower() in text
            return "" if said else hint.format(var=variable)
    if isinstance(error, TransientError):
        return "the server did not answer as expected; retry, then check its logs"
    return f"check {variable}"
