"""Progress of a long step: a live line on a terminal, a log line every few seconds otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from utilities import interrupts

logger = logging.getLogger(__name__)


class Progress:
    """Counts rows for one step and reports rows, rows/s and elapsed time.

    On a terminal it redraws one line on stderr; without one (cron, Task Scheduler, a pipe), and on any
    thread but the main one (tables loading at once), it logs a line every ``interval`` seconds, so a
    long load is never silent.
    """

    def __init__(
        self, label: str, interval: float = 10.0, stream: TextIO | None = None, total: int | None = None
    ) -> None:
        self.label = label
        self.total = total  # rows expected (a precheck's count): the lines then show the share and an ETA
        self.interval = interval
        self.rows = 0
        self.started = time.perf_counter()
        self._stream = stream if stream is not None else sys.stderr
        # one live line per terminal: a load on another thread (parallel: N) logs its lines instead
        on_main = threading.current_thread() is threading.main_thread()
        self._live = on_main and bool(getattr(self._stream, "isatty", lambda: False)())
        self._last_report = self.started

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        elapsed = self.elapsed
        return self.rows / elapsed if elapsed > 0 else 0.0

    def advance(self, rows: int) -> None:
        """Add ``rows`` and report if it is time to. Every load passes here with each chunk, so this is
        also where a load on another thread than the main one notices Ctrl-C or SIGTERM (and unwinds)."""
        interrupts.check()
        self.rows += rows
        now = time.perf_counter()
        if self._live and now - self._last_report >= 0.2:
            self._last_report = now
            self._stream.write(
                f"\r  {self.label}: {self.rows:,}{self._of()} rows  {self.rate:,.0f} rows/s  {self.elapsed:.1f} s"
                f"{self._eta()} "
            )
            self._stream.flush()
        elif not self._live and now - self._last_report >= self.interval:
            self._last_report = now
            logger.info(
                "%s: %s%s rows so far, %s rows/s, %.1f s%s%s",
                self.label,
                f"{self.rows:,}",
                self._of(),
                f"{self.rate:,.0f}",
                self.elapsed,
                self._eta(),
                _peak_memory(),
            )

    def _of(self) -> str:
        return f" of {self.total:,}" if self.total else ""

    def _eta(self) -> str:
        """ ", ETA 42 s" from the rate so far, when the total is known."""
        if not self.total or not self.rows or self.rows >= self.total:
            return ""
        seconds = (self.total - self.rows) / self.rate if self.rate > 0 else 0.0
        return f", ETA {seconds / 60:.0f} min" if seconds >= 120 else f", ETA {seconds:.0f} s"

    def finish(self) -> None:
        """Clear the live line (the step's own summary line follows in the log)."""
        if self._live:
            self._stream.write("\r" + " " * 78 + "\r")
            self._stream.flush()


def _peak_memory() -> str:
    """ ", peak RSS N MB" where the platform reports it (not on Windows)."""
    try:
        import resource
    except ImportError:
        return ""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return f", peak RSS {peak / (1 << 20 if sys.platform == 'darwin' else 1 << 10):.0f} MB"
