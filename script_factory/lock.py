"""The project lock: one live run per project, on Windows and Linux alike.

The lock is an operating-system lock on ``metadata/locks/<project>.lock`` (``fcntl.flock`` on POSIX,
``msvcrt.locking`` on Windows), so it dies with its process: a run killed with SIGKILL or a power
cut never leaves a lock that blocks the next run. The file also records the holder's pid; if the
next run finds a pid there that it could lock over, the previous run died without cleaning up, and
the takeover is logged as a warning.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from utilities.errors import LockedError

logger = logging.getLogger(__name__)


class ProjectLock:
    """Context manager: ``with ProjectLock(folder, project): ...`` raises LockedError if held."""

    def __init__(self, folder: Path, project: str) -> None:
        self.path = folder / f"{project}.lock"
        self.project = project
        self._handle: IO[str] | None = None
        self.previous_holder: dict[str, Any] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run's lifetime
        try:
            _lock(handle)
        except OSError:
            holder = _read_holder(self.path)
            handle.close()
            who = f" by pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}" if holder else ""
            raise LockedError(
                f"project {self.project} is already running{who}; wait for it to finish (lock file {self.path})"
            ) from None
        handle.seek(0)
        stale = handle.read().strip()
        if stale:
            try:
                self.previous_holder = json.loads(stale)
            except ValueError:
                self.previous_holder = {"raw": stale[:200]}
            logger.warning(
                "took over the lock of project %s left by a run that did not finish (%s); "
                "its audit row is closed as failed",
                self.project,
                ", ".join(f"{k} {v}" for k, v in self.previous_holder.items()),
            )
        handle.seek(0)
        handle.truncate()
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": datetime.now(UTC).isoformat()}
        handle.write(json.dumps(holder))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Clear the holder record and release the lock (the file stays; it is reused)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            handle.seek(0)
            handle.truncate()
            handle.flush()
        finally:
            _unlock(handle)
            handle.close()

    def __enter__(self) -> ProjectLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(folder: Path, name: str) -> dict[str, Any] | None:
    """Who holds lock ``name`` in ``folder`` (pid, host, started; {} if it did not say), or None when it is free.
    It asks by trying the lock for an instant (a run starting at that very instant would find it held)."""
    path = folder / f"{name}.lock"
    if not path.is_file():
        return None
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            _lock(handle)
        except OSError:
            return _read_holder(path) or {}
        _unlock(handle)
    return None


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
