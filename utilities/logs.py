"""Logging: one file per run plus the console, the same lines in both, secrets masked in every line.

Work done on a thread of its own for one table (``parallel: N``) runs under :func:`tagged`: each of its
lines starts with ``[table]``, so interleaved lines still say which table they belong to.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from utilities.files import stamped_path

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_HANDLER_TAG = "_etl_runner_handler"
_CONSOLE_ONLY = "the run goes on and logs to the console only"


_tag = threading.local()


@contextlib.contextmanager
def tagged(label: str) -> Iterator[None]:
    """Every line logged on this thread inside the block reads ``... name: [label] message``."""
    previous = getattr(_tag, "label", None)
    _tag.label = label
    try:
        yield
    finally:
        _tag.label = previous


class _Tagging(logging.Filter):
    """Puts the thread's tag (see :func:`tagged`) in front of the message, once per record."""

    def filter(self, record: logging.LogRecord) -> bool:
        label = getattr(_tag, "label", None)
        if label is not None and not hasattr(record, "etl_tag"):
            record.etl_tag = label
            shown = label.replace("%", "%%") if record.args else label  # the message is still to be %-formatted
            record.msg = f"[{shown}] {record.msg}"
        return True


class MaskingFormatter(logging.Formatter):
    """Formats a record, tracebacks included, then masks every secret in the text."""

    def __init__(self, mask: Callable[[str], str]) -> None:
        super().__init__(LOG_FORMAT, DATE_FORMAT)
        self._mask = mask

    def format(self, record: logging.LogRecord) -> str:
        return self._mask(super().format(record))


class ConsoleFormatter(MaskingFormatter):
    """The console's lines: the same, but a traceback stays in the log file (the operator sees one line
    per event; ``ETL_LOG_LEVEL=DEBUG`` and the file have the rest)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            record = copy.copy(record)
            record.exc_info = record.exc_text = record.stack_info = None
        return super().format(record)


def new_log_path(logs_dir: Path, project: str, started: datetime) -> Path:
    """``<logs_dir>/<project>/<project>_<YYYYmmdd_HHMMSS>.log``, suffixed ``_2``... if taken."""
    return stamped_path(logs_dir / project, f"{project}_{started:%Y%m%d_%H%M%S}", ".log")


def install(log_file: Path | None, mask: Callable[[str], str], level: int = logging.INFO) -> Path | None:
    """Send root logging to the console (stderr) and, if given, to ``log_file``; replaces earlier ones.

    Returns ``log_file``, or None if it could not be opened: that is said once on the console and
    logging goes on there only, as it does if a write to the file fails later (see :class:`RunLogFile`).
    """
    console = _install_console(mask, level)
    return _attach_file(log_file, console, mask) if log_file is not None else None


def install_run_log(
    logs_dir: Path, project: str, started: datetime, mask: Callable[[str], str], level: int = logging.INFO
) -> Path | None:
    """:func:`install` with the run's log file at :func:`new_log_path`; None if the file cannot be made
    (its folder cannot be created, the disk is full, no permission), which is said once on the console."""
    console = _install_console(mask, level)
    try:
        log_file = new_log_path(logs_dir, project, started)
    except OSError as exc:
        _say(console, f"could not create a log file in {logs_dir / project} ({_reason(exc)}); {_CONSOLE_ONLY}")
        return None
    return _attach_file(log_file, console, mask)


class RunLogFile(logging.FileHandler):
    """The run's log file. Logging never changes a run's outcome: the first write that fails (a full
    disk, a lost network drive) is said once on the console, with the path and the OS's reason, and
    the file is dropped for the rest of the run instead of printing a traceback for every line."""

    def __init__(self, path: Path, console: logging.Handler) -> None:
        super().__init__(path, encoding="utf-8")
        self._console = console
        self._dropped = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self._dropped:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            self._drop(error)
        else:  # a bad format string in a log call is a programming error: logging's own report
            super().handleError(record)

    def close(self) -> None:
        try:
            super().close()  # flushes what is buffered: may be the first write to fail
        except OSError as exc:
            self._drop(exc)

    def _drop(self, error: OSError) -> None:
        if self._dropped:
            return
        self._dropped = True
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError):  # the same failure again, flushing the buffer: reported below
                stream.close()
        _say(self._console, f"could not write the log file {self.baseFilename} ({_reason(error)}); {_CONSOLE_ONLY}")


def remove() -> None:
    """Detach and close the handlers that :func:`install` added (the log file is released)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            root.removeHandler(handler)
            handler.close()


def _install_console(mask: Callable[[str], str], level: int) -> logging.Handler:
    remove()
    logging.getLogger().setLevel(level)
    return _attach(logging.StreamHandler(sys.stderr), ConsoleFormatter(mask))


def _attach_file(log_file: Path, console: logging.Handler, mask: Callable[[str], str]) -> Path | None:
    try:
        handler = RunLogFile(log_file, console)
    except OSError as exc:
        _say(console, f"could not open the log file {log_file} ({_reason(exc)}); {_CONSOLE_ONLY}")
        return None
    _attach(handler, MaskingFormatter(mask))
    return log_file


def _attach(handler: logging.Handler, formatter: logging.Formatter | None) -> logging.Handler:
    handler.setFormatter(formatter)
    handler.addFilter(_Tagging())
    setattr(handler, _HANDLER_TAG, True)
    logging.getLogger().addHandler(handler)
    return handler


def _say(console: logging.Handler, message: str) -> None:
    """One WARNING line on the console, whatever the log level (the operator must learn the log is gone)."""
    console.handle(logging.getLogger(__name__).makeRecord(__name__, logging.WARNING, __file__, 0, message, (), None))


def _reason(error: OSError) -> str:
    return error.strerror or str(error)
