"""Tasks and their results: a task is a name plus a ``functools.partial`` of a step function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StepResult:
    """What a step reports back to the runner for the audit row and the summary."""

    rows: int = 0
    data_min: Any = None
    data_max: Any = None
    files: tuple[Path, ...] = ()
    message: str = ""
    delete_files: bool = False  # the files are deleted once the run has reported them
    strategy: str | None = None  # for loads: the strategy this run applied
    source_rows: int | None = None  # for reconciled loads: the source's count of the window
    no_data: bool = False  # for loads: the window had no row (a precheck skipped the load, or none came)


@dataclass(frozen=True)
class Task:
    """One unit of work. ``run(ctx)`` does it; ``preview(ctx)`` says what it would do (``--dry-run``).

    ``run`` is a ``functools.partial`` of a plain step function whose keyword-only parameters the
    factory bound; the runner supplies only the shared run context.
    """

    name: str
    kind: str
    run: partial[Any]
    target_table: str | None = None
    preview: Callable[[Any], str] | None = None
    writes_warehouse: bool = False  # its writes belong in the run's transaction with ``publish: run``
    continue_on_error: bool = False  # a load whose failure the run records and goes on after
    #: with ``parallel: N``, the tasks that must have finished before this one starts (a relationships gate's table)
    after: tuple[str, ...] = ()
    #: with ``parallel: N``, tasks that share a key never run at once (a connection that takes one writer)
    exclusive: frozenset[str] = frozenset()

    def bound_parameters(self) -> dict[str, Any]:
        """The parameters the factory bound, for ``--dry-run``."""
        return dict(self.run.keywords)

    @property
    def step(self) -> str:
        func = self.run.func
        return f"{func.__module__}.{func.__qualname__}"
