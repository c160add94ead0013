"""The exit-code table: the one module that maps an outcome to the code a scheduler reads."""

from __future__ import annotations

from enum import IntEnum

from utilities.errors import ConfigError, DataQualityError, LockedError, UpstreamNotReady


class ExitCode(IntEnum):
    """Exit codes of ``script_runner.py``; the launchers pass them on unchanged."""

    SUCCESS = 0  # every task succeeded
    TASK_FAILED = 1  # a task failed (the audit row says which and why)
    BAD_CONFIG = 2  # bad arguments or config; nothing connected
    LOCKED = 3  # another live run of the same project holds the lock
    QUALITY_FAILED = 4  # a data-quality check of severity "error" failed
    UPSTREAM_NOT_READY = 5  # a project of depends_on did not succeed within its max_age; the run was skipped
    INTERRUPTED = 130  # Ctrl-C or SIGTERM: the audit row is closed as failed, open loads rolled back


def exit_code_for(error: BaseException | None) -> ExitCode:
    """The exit code for a run that ended with ``error`` (``None`` means success)."""
    if error is None:
        return ExitCode.SUCCESS
    if isinstance(error, ConfigError):
        return ExitCode.BAD_CONFIG
    if isinstance(error, LockedError):
        return ExitCode.LOCKED
    if isinstance(error, DataQualityError):
        return ExitCode.QUALITY_FAILED
    if isinstance(error, UpstreamNotReady):
        return ExitCode.UPSTREAM_NOT_READY
    return ExitCode.TASK_FAILED
