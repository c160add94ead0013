"""The run request: what the command line asked for, validated and frozen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


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
