"""Timed child processes: wall time with ``time.perf_counter``, peak RSS with GNU ``/usr/bin/time``.

Each approach runs as its own child process, started through ``/usr/bin/time -f %M``, which reports
the command's ``ru_maxrss`` from ``wait4``: the largest peak resident set of the command and of
every descendant it waited for (for ``bash -c 'a | b'``: the largest of bash, a and b).

Why not ``os.wait4`` on the child directly: Linux keeps a process's RSS high-water mark across
``fork`` and ``exec``, so a child forked from this (large) Python process would report at least our
own peak. ``/usr/bin/time`` is a small program; what it forks starts small.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Measurement:
    """One run of one approach."""

    seconds: float
    peak_rss_mb: float
    exit_code: int
    timed_out: bool
    log: Path

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def check_time_tool() -> None:
    """Raise when GNU time is missing (Debian/Ubuntu: ``apt-get install time``)."""
    if not (Path(GNU_TIME).is_file() and os.access(GNU_TIME, os.X_OK)):
        raise RuntimeError(f"{GNU_TIME} (GNU time) is needed to measure peak RSS; install it: apt-get install time")


def run_measured(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path, timeout: float
) -> Measurement:  # fmt: skip
    """Run ``argv`` to completion (its output to ``log``); killed with its process group after ``timeout`` s."""
    log.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log.with_suffix(".rss")
    command = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *argv]
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            command, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        expired = threading.Event()
        timer = threading.Timer(timeout, _kill_group, (proc.pid, expired))
        timer.start()
        try:
            exit_code = proc.wait()
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
    return Measurement(
        seconds=seconds,
        peak_rss_mb=_peak_kb(rss_file) / 1024,
        exit_code=exit_code,
        timed_out=expired.is_set(),
        log=log,
    )


def _peak_kb(rss_file: Path) -> int:
    """The ``%M`` figure: the last line GNU time wrote (lines before it note a non-zero exit or a signal)."""
    try:
        lines = rss_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return int(lines[-1].strip())
    except (OSError, ValueError, IndexError):
        return 0


def _kill_group(pid: int, expired: threading.Event) -> None:
    expired.set()
    try:
        os.killpg(pid, signal.SIGKILL)  # the child leads its own session: this ends only what it started
    except ProcessLookupError:
        pass


def log_tail(log: Path, lines: int = 12) -> str:
    """The error lines and the last lines of a child's log, for an error message."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    except OSError:
        return "(no log)"
    tail = text[-lines:]
    errors = [line for line in text[:-lines] if "Error" in line or "Exception" in line][-5:]
    return "\n".join([*errors, *(["..."] if errors else []), *tail])
