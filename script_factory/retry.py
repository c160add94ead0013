"""Retries: a call tried again while it raises TransientError, with a back-off that doubles."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from script_factory.config import RetrySpec
from utilities import interrupts
from utilities.errors import TransientError

logger = logging.getLogger("script_factory.runner")
T = TypeVar("T")


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """How a retried call ended: its value, or its last error, after ``number`` attempts."""

    number: int
    value: T | None = None
    error: Exception | None = None


def retrying(call: Callable[[], T], retries: RetrySpec, label: str) -> Attempt[T]:
    """``call()`` up to ``retries.attempts`` times while it raises TransientError, pausing
    ``backoff_seconds``, then twice that, and so on. Any other error ends it at once. An error that
    arrives because the operator stopped the run is raised as KeyboardInterrupt."""
    attempts = retries.attempts
    for number in range(1, attempts + 1):
        try:
            return Attempt(number, value=call())
        except TransientError as exc:
            if interrupts.requested():
                raise KeyboardInterrupt from exc
            if number == attempts:
                return Attempt(number, error=exc)
            pause = retries.backoff_seconds * 2 ** (number - 1)
            logger.warning("%s: attempt %d of %d failed (%s); retrying in %g s", label, number, attempts, exc, pause)
            time.sleep(pause)
        except Exception as exc:
            if interrupts.requested():
                raise KeyboardInterrupt from exc
            return Attempt(number, error=exc)
    raise AssertionError("retries.attempts is at least 1")
