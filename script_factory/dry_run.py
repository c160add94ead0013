"""``--dry-run``: print the assembled tasks, their bound parameters and the SQL they would run.

Nothing is written and nothing is created: the watermark is read only if the audit table already
exists, and an embedded SQLite warehouse that does not exist yet is not opened. So a dry run connects
(and imports a driver) only to read the watermarks of a warehouse that exists; the SQL it prints is
compiled by SQLAlchemy in the source's dialect, which needs no driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import is_dataclass
from typing import Any

from connectors import open_connector
from script_factory.context import Connections, RunContext
from script_factory.factory import Plan
from script_factory.request import RunRequest
from script_factory.settings import Settings
from script_factory.window import resolve_windows
from utilities.dates import CursorValue, utc_now
from utilities.secrets import Masker


@contextmanager
def preview_context(plan: Plan, request: RunRequest, settings: Settings) -> Iterator[tuple[RunContext, str]]:
    """A run context that reads but never writes (``--dry-run``, ``--check``), and where the watermarks
    came from; its connections are closed when the block ends."""
    project = plan.project
    now = utc_now()
    engine, watermark_note = _read_only_engine(plan, settings)
    windows, run_window = resolve_windows(project, request, now, _watermarks(engine, project.name))
    connections = Connections(plan.connection_urls, settings.paths.home, settings.variables, project.name)
    try:
        yield (
            RunContext(
                request=request,
                project=project,
                paths=settings.paths,
                environment=settings.environment,
                connections=connections,
                windows=windows,
                run_window=run_window,
                now=now,
            ),
            watermark_note,
        )
    finally:
        connections.close()
        if engine is not None:
            engine.dispose()


def render(plan: Plan, request: RunRequest, settings: Settings) -> str:
    from connectors.read_text import kept_in

    with (
        kept_in(settings.paths.metadata / "cache" / "reads"),
        preview_context(plan, request, settings) as (ctx, watermark_note),
    ):
        return _render(plan, request, settings, ctx, watermark_note)


def _render(plan: Plan, request: RunRequest, settings: Settings, ctx: RunContext, watermark_note: str) -> str:
    project = plan.project
    mask = Masker()
    lines = [
        f"DRY RUN of project {project.name} ({project.folder / 'project.yml'}): nothing is written",
        f"load type {request.load_type.value}, environment {settings.environment}; watermarks: {watermark_note}",
        "connections:",
    ]
    lines += [f"  {name} = {mask(url.reveal())}" for name, url in plan.connection_urls.items()]
    lines += plan.notes
    lines.append(f"tasks ({len(plan.tasks)}), in order:")
    for number, task in enumerate(plan.tasks, 1):
        lines.append(f"\n{number}. {task.name}  [{task.kind}]  {task.step}")
        for key, value in task.bound_parameters().items():
            if key not in ("sql", "files"):
                lines.append(f"   {key} = {_short(value)}")
        if task.preview is not None:
            lines += ["   " + line for line in task.preview(ctx).splitlines()]
    return "\n".join(lines)


def _read_only_engine(plan: Plan, settings: Settings) -> tuple[Any, str]:
    """An engine for reading watermarks, or None with the reason; never creates a database."""
    warehouse = open_connector(
        plan.project.warehouse, plan.connection_urls[plan.project.warehouse], settings.paths.home, settings.variables
    )
    path = getattr(warehouse, "path", None)
    if path is not None and not path.is_file():
        return None, f"none yet ({path} does not exist)"
    from script_factory import audit  # SQLAlchemy: only when there is a warehouse to read

    try:
        engine = warehouse.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            exists = audit.tables_exist(conn)
        if not exists:
            engine.dispose()
            return None, "none yet (no etl_runs table)"
        return engine, "read from etl_runs"
    except Exception as exc:  # noqa: BLE001 - a dry run reports an unreachable warehouse instead of failing
        return None, f"unknown (warehouse not readable: {type(exc).__name__})"


def _watermarks(engine: Any, project: str) -> Callable[[str], CursorValue | None] | None:
    """Reads a table's watermark, or None when there is no audit table to read it from."""
    if engine is None:
        return None

    from script_factory import audit

    def read(table: str) -> CursorValue | None:
        with engine.connect() as conn:
            return audit.previous_max(conn, project, table)

    return read


def _short(value: Any) -> str:
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    if is_dataclass(value):
        fields = {k: v for k, v in vars(value).items() if v not in (None, (), {}, "")}
        text = f"{type(value).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"
    else:
        text = repr(value)
    return text if len(text) <= 400 else text[:400] + "..."
