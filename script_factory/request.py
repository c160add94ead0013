"""The run request: what the command line asked for, validated and frozen."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from utilities.errors import ConfigError

# A project is a plain folder name under customer_code/ (the rule of project.yml's ``project:`` key):
# no path separators, no '.' or '..', so ``--project`` can never reach a project.yml elsewhere.
PROJECT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Step(StrEnum):
    """The phases of a run, for ``--steps`` (an orchestrator runs each phase as its own task)."""

    PREPARE = "prepare"  # the warehouse DDL and the before_load functions
    LOAD = "load"  # the table loads (with their gates)
    FINISH = "finish"  # the after_load functions, the quality checks, the aggregations and the outputs


ALL_STEPS = frozenset(Step)


class LoadType(StrEnum):
    """``I`` loads the window after the previous watermark; ``F`` reloads everything."""

    INCREMENTAL = "I"
    FULL = "F"


@dataclass(frozen=True)
class RunRequest:
    """One immutable request: built by the command line, read by the factory and the runner."""

    project: str
    load_type: LoadType = LoadType.INCREMENTAL
    start_date: datetime | None = None
    end_date: datetime | None = None
    env_name: str | None = None
    dry_run: bool = False
    tables: tuple[str, ...] = ()  # load only these target tables (and their DDL and gates); () = everything
    repair: bool = False  # each table's window is replaced (delete_insert), whatever its strategy
    steps: frozenset[Step] = ALL_STEPS  # the phases to run (``--steps``); every one by default
    orchestrator_run_id: str | None = None  # the scheduler's own run id (Airflow's), kept on the audit row


def check_project_name(name: str, option: str = "--project") -> str:
    """``name`` if it is a plain project folder name; ConfigError (exit 2) for a path or anything else.
    ``option`` is the command-line option that gave it (``--project``, ``--new``), for the message."""
    if not PROJECT_NAME.fullmatch(name):
        raise ConfigError(
            f"{option} {name!r} is not a project name: give the folder name under customer_code/ "
            "(lower-case letters, digits and '_', starting with a letter, no path), e.g. "
            f"{option} sales_demo; see script_runner.py --list"
        )
    return name
