"""The outcome of a run: computed once, from the outcomes of its tasks, and never changed afterwards.

The runner records a :class:`TaskOutcome` per task it ran, notes a failure outside the tasks (the
warehouse down before the first task) and whether the run was interrupted; :func:`decide` turns that
into the run's status, exit code, rows, data range and error. The audit row, the summary, the e-mail
and the exit code all read the same :class:`RunOutcome`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from script_factory.exit_codes import ExitCode, exit_code_for
from script_factory.task import StepResult, Task
from utilities.dates import extreme
from utilities.errors import EtlError

SUCCESS, FAILED, ROLLED_BACK, SKIPPED = "success", "failed", "rolled_back", "skipped"
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


@dataclass(frozen=True)
class TaskOutcome:
    """What one task did: its status, its result or its error, and how many attempts it took."""

    task: Task
    status: str
    seconds: float
    attempts: int = 1
    result: StepResult | None = None
    exception: BaseException | None = None

    @property
    def error(self) -> str | None:
        return describe(self.exception) if self.exception is not None else None


@dataclass(frozen=True)
class RunOutcome:
    """The run's verdict."""

    status: str
    exit_code: ExitCode
    rows: int = 0
    source_rows: int | None = None
    data_min: Any = None
    data_max: Any = None
    error: str | None = None
    failed_task: str | None = None
    outputs: tuple[Path, ...] = ()


def decide(outcomes: Sequence[TaskOutcome], failure: BaseException | None, interrupted: bool) -> RunOutcome:
    """The run's outcome: the first failing task's error and exit code (else ``failure``, an error outside
    the tasks), or success; an interruption always wins, with exit code 130. When several tasks failed
    (loads with ``continue_on_error``), the error names each with its own error. A run stopped because an
    upstream project is not ready is ``skipped`` (exit code 5)."""
    failures = [o for o in outcomes if o.status not in (SUCCESS, SKIPPED)]
    failed = failures[0] if failures else None
    error = failed.exception if failed is not None else failure
    loads = [o.result for o in outcomes if o.task.kind == "load" and o.result is not None]
    code = ExitCode.INTERRUPTED if interrupted else exit_code_for(error)
    message = INTERRUPTED if interrupted else (describe(error) if error is not None else None)
    if len(failures) > 1 and not interrupted:
        message = f"{len(failures)} tasks failed: " + "; ".join(f"{o.task.name}: {o.error}" for o in failures)
    status = SKIPPED if code is ExitCode.UPSTREAM_NOT_READY else SUCCESS if code is ExitCode.SUCCESS else FAILED
    return RunOutcome(
        status=status,
        exit_code=code,
        rows=sum(r.rows for r in loads),
        source_rows=sum(counts) if (counts := [r.source_rows for r in loads if r.source_rows is not None]) else None,
        data_min=extreme([r.data_min for r in loads if r.data_min is not None], min),
        data_max=extreme([r.data_max for r in loads if r.data_max is not None], max),
        error=message,
        failed_task=failed.task.name if failed is not None else None,
        outputs=tuple(path for o in outcomes if o.result is not None for path in o.result.files),
    )


@dataclass(frozen=True)
class RunSummary:
    """What the command line prints and the e-mail says: the outcome, and where to look."""

    project: str
    load_type: str
    started: datetime
    seconds: float
    outcome: RunOutcome
    outcomes: tuple[TaskOutcome, ...] = ()
    run_id: int | None = None
    log_file: Path | None = None
    audit_closed: bool = True  # False: the warehouse never answered to close the audit row

    @property
    def status(self) -> str:
        return self.outcome.status if self.audit_closed else FAILED

    @property
    def exit_code(self) -> ExitCode:
        """The outcome's code; a run whose audit row could not be closed is not a success (the next run
        closes the row as failed, so the watermark does not move)."""
        if not self.audit_closed and self.outcome.exit_code is ExitCode.SUCCESS:
            return ExitCode.TASK_FAILED
        return self.outcome.exit_code


def describe(error: BaseException | None) -> str:
    """One line for an error: our own errors say it themselves; others get their type."""
    if error is None:
        return ""
    text = str(error) if isinstance(error, EtlError) else f"{type(error).__name__}: {error}"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
