"""Stop requests: Ctrl-C and SIGTERM are noted here, then raised as KeyboardInterrupt.

A stop can surface as another exception: a driver that is interrupted mid-query cancels it, and the
cleanup that follows may raise an error of its own, which replaces the KeyboardInterrupt. Whoever
catches an error can ask :func:`requested` whether it really means "the operator stopped the run".

Signals reach the main thread only. A load running on another thread (``parallel: N``) learns of the
stop at its next chunk or before its commit, through :func:`check`, and unwinds the same way.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_requested = threading.Event()


def install() -> None:
    """Route SIGINT and SIGTERM (a scheduler stopping the job) through :func:`stop`, so both unwind like
    Ctrl-C. Only possible in the main thread; elsewhere (a test runner's worker thread) nothing changes."""
    _requested.clear()
    for name in ("SIGINT", "SIGTERM"):
        if hasattr(signal, name):
            try:
                signal.signal(getattr(signal, name), _on_signal)
            except ValueError:  # not the main thread
                return


def requested() -> bool:
    """Whether Ctrl-C or SIGTERM arrived since :func:`install`."""
    return _requested.is_set()


def request() -> None:
    """Note a stop that reached the main thread as a KeyboardInterrupt without the handler (so the loads
    on other threads see it too)."""
    _requested.set()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C or SIGTERM arrived (for work on threads the signal cannot reach)."""
    if _requested.is_set():
        raise KeyboardInterrupt


def _on_signal(_signum: int, _frame: FrameType | None) -> None:
    _requested.set()
    raise KeyboardInterrupt
