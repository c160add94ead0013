"""Logging: one file per run plus the console, the same lines in both, secrets masked in every line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from utilities.files import stamped_path

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_HANDLER_TAG = "_etl_runner_handler"


class MaskingFormatter(logging.Formatter):
    """Formats a record, tracebacks included, then masks every secret in the text."""

    def __init__(self, mask: Callable[[str], str]) -> None:
        super().__init__(LOG_FORMAT, DATE_FORMAT)
        self._mask = mask

    def format(self, record: logging.LogRecord) -> str:
        return self._mask(super().format(record))


def new_log_path(logs_dir: Path, project: str, started: datetime) -> Path:
    """``<logs_dir>/<project>/<project>_<YYYYmmdd_HHMMSS>.log``, suffixed ``_2``... if taken."""
    return stamped_path(logs_dir / project, f"{project}_{started:%Y%m%d_%H%M%S}", ".log")


def install(log_file: Path | None, mask: Callable[[str], str], level: int = logging.INFO) -> None:
    """Send root logging to the console (stderr) and, if given, to ``log_file``; replaces earlier ones."""
    remove()
    root = logging.getLogger()
    root.setLevel(level)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(MaskingFormatter(mask))
        setattr(handler, _HANDLER_TAG, True)
        root.addHandler(handler)


def remove() -> None:
    """Detach and close the handlers that :func:`install` added (the log file is released)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            root.removeHandler(handler)
            handler.close()
