"""The exceptions of the whole product, grouped by what the runner does about them (the ground floor:
connectors, checks and the engine all raise them, so they live here and import nothing of ours).

Rationale (the runner is the only place that catches a failing task):

* ``ConfigError``      - the request or the project is wrong; nothing has connected yet. Exit 2.
* ``LockedError``      - another live run of the same project holds the lock. Exit 3.
* ``TransientError``   - the world hiccupped (a dropped connection, a timeout, a deadlock); the
                         runner retries the task with back-off before giving up. Exit 1 at the end.
* ``FatalError``       - retrying will not help (bad SQL, a wrong password, a schema mismatch). Exit 1.
* ``DataQualityError`` - a quality check of severity ``error`` failed. Exit 4.
* ``UpstreamNotReady`` - a project this one depends on has not succeeded recently enough; the run is
                         recorded as skipped before any task. Exit 5.

Connectors translate driver errors into ``TransientError`` or ``FatalError`` at their boundary and
re-raise ``from`` the original, so the cause is kept but the runner never needs driver imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class EtlError(Exception):
    """Base class: every error the runner knows how to report in one line."""


class ConfigError(EtlError):
    """Bad arguments, a malformed project.yml, a missing file, an unknown or unset connection."""


class LockedError(EtlError):
    """Another live run of the same project holds the project lock."""


class TransientError(EtlError):
    """A failure worth retrying: connection lost, timeout, serialization failure, deadlock."""


class FatalError(EtlError):
    """A failure that retrying will not fix: bad SQL, wrong credentials, schema mismatch."""


class DataQualityError(EtlError):
    """A data-quality check of severity ``error`` failed. ``results`` are the check results (as
    ``etl_dq_results`` rows) to record once the transaction that evaluated them has rolled back."""

    def __init__(self, message: str, results: tuple[Mapping[str, Any], ...] = ()) -> None:
        super().__init__(message)
        self.results = results


class UpstreamNotReady(EtlError):
    """A project named under ``depends_on`` has no successful latest run within its ``max_age``."""
