"""Driver errors a connector recognises by code: the verdict (retry or not), the operator's hint, and the
translation at the connector boundary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from utilities.errors import EtlError, FatalError, TransientError

if TYPE_CHECKING:
    from connectors.sql import SqlConnector


@dataclass(frozen=True)
class Verdict:
    """What a recognised driver error means: retry it or not, the driver's own text and what to check."""

    error: type[EtlError]
    text: str
    hint: str

    @property
    def transient(self) -> bool:
        return self.error is TransientError


def fatal(text: str, hint: str) -> Verdict:
    return Verdict(FatalError, text, hint)


def transient(text: str, hint: str) -> Verdict:
    return Verdict(TransientError, text, hint)


Classifier = Callable[[BaseException], "Verdict | None"]


@contextmanager
def translating(connector: SqlConnector, action: str, classify: Classifier) -> Iterator[None]:
    """Like ``SqlConnector.translate_errors``, but driver errors ``classify`` recognises get its verdict
    and hint; everything else falls through to the generic translation."""
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except DBAPIError as exc:
        verdict = classify(exc.orig) if exc.orig is not None else None
        if verdict is None:
            raise
        where = f"{connector.kind} connection {connector.name!r} ({connector.safe_url})"
        raise verdict.error(f"{where}: {action} failed: {verdict.text}; {verdict.hint}") from exc


def first_lines(message: str, limit: int = 2) -> str:
    """The first ``limit`` meaningful lines of a driver message, joined (drops "Help: <url>" lines)."""
    lines = [line.strip() for line in message.strip().splitlines()]
    kept = [line for line in lines if line and not line.lower().startswith("help:")]
    return " - ".join(kept[:limit]) if kept else "unknown error"
