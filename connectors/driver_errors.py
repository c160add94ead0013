"""Driver errors at the connector boundary: each connector's classifier judges a driver's exception by its
code (retry it or not, and what to check), and :func:`translating` re-raises it as one line naming the
connection and the action, ``from`` the original. Every connector translates through this one helper."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from utilities.errors import EtlError, FatalError, TransientError
from utilities.secrets import Masker

if TYPE_CHECKING:
    from connectors.base import Connector

#: connection settings (``ETL_CONN_<NAME>_<KEY>``) whose values are masked in every translated message
SECRET_SETTINGS = (
    "PASSWORD",
    "SECRET_ACCESS_KEY",
    "SESSION_TOKEN",
    "SECURITY_TOKEN",
    "CONSUMER_SECRET",
    "ACCESS_TOKEN",
    "PRIVATE_KEY_PASSPHRASE",
    "CREDENTIALS_JSON",
)
# SQLAlchemy's link at the end of its messages: "(Background on this error at: https://sqlalche.me/...)".
_BACKGROUND = re.compile(r"\s*\(Background on this error at: [^)]*\)")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
# Never translated: the run's own errors, and the exceptions that end or unwind the process.
_PASS_THROUGH = (EtlError, KeyboardInterrupt, SystemExit, GeneratorExit)


@dataclass(frozen=True)
class Verdict:
    """What a recognised driver error means: retry it or not, the driver's own text and what to check.

    ``outcome`` completes "<action> ...": "failed", or e.g. "failed after retrying for 30 s".
    """

    error: type[EtlError]
    text: str
    hint: str = ""
    outcome: str = "failed"

    @property
    def transient(self) -> bool:
        return self.error is TransientError


def fatal(text: str, hint: str = "") -> Verdict:
    return Verdict(FatalError, text, hint)


def transient(text: str, hint: str = "") -> Verdict:
    return Verdict(TransientError, text, hint)


Classifier = Callable[[BaseException], "Verdict | None"]


@contextmanager
def translating(
    connector: Connector,
    action: str,
    classify: Classifier,
    *,
    place: str | None = None,
    mask: Callable[[str], str] | None = None,
) -> Iterator[None]:
    """Translate what ``classify`` recognises into its verdict's TransientError or FatalError, raised
    ``from`` the original with one line: ``<kind> connection '<name>' (<place>): <action> failed: <text>;
    <hint>``. ``place`` defaults to the masked URL; the connection's secrets are masked in the line.
    Everything ``classify`` does not recognise (None) passes through untouched, as do the run's own errors."""
    try:
        yield
    except _PASS_THROUGH:
        raise
    except BaseException as exc:  # connectorx reports some failures as a Rust panic, a BaseException
        verdict = classify(exc)
        if verdict is None:
            raise
        where = connector.safe_url if place is None else place
        text = render(connector.kind, connector.name, where, action, verdict, mask or connection_masker(connector))
        raise verdict.error(text) from exc


def render(
    kind: str, name: str, place: str, action: str, verdict: Verdict, mask: Callable[[str], str] | None = None
) -> str:
    """The one-line message of a translated error (secrets masked when ``mask`` is given)."""
    text = f"{kind} connection {name!r} ({place}): {action} {verdict.outcome}: {verdict.text}"
    if verdict.hint:
        text += f"; {verdict.hint}"
    text = _LINE_BREAKS.sub(" ", text)  # one line, whatever a driver put in its message
    return mask(text) if mask is not None else text


def connection_masker(connector: Connector) -> Masker:
    """Masks the connection's secrets: the URL's password and its secret settings (``_PASSWORD``...)."""
    values = [connector.setting(key) or "" for key in SECRET_SETTINGS]
    try:
        password = urlsplit(connector.url.reveal()).password
    except ValueError:
        password = None
    if password:
        values += [password, unquote(password)]
    return Masker(values)


def credential_variables(name: str) -> str:
    """Where a SQL connection's user and password come from, for hints."""
    return f"ETL_CONN_{name.upper()} / ETL_CONN_{name.upper()}_PASSWORD"


def first_lines(message: str, limit: int = 2) -> str:
    """The first ``limit`` meaningful lines of a driver message, joined: drops empty lines, "Help: <url>"
    lines and SQLAlchemy's "(Background on this error at: ...)" link and "[SQL: ...]" dump."""
    lines = [_BACKGROUND.sub("", line).strip() for line in message.strip().splitlines()]
    noise = ("help:", "[sql:", "[parameters:", "(background on this error")
    kept = [line for line in lines if line and not line.lower().startswith(noise)]
    return " - ".join(kept[:limit]) if kept else "unknown error"


def first_line(message: str) -> str:
    """The first meaningful line of a driver message (see :func:`first_lines`)."""
    return first_lines(message, 1)


def classify_sqlalchemy(
    exc: BaseException, classify: Classifier, driver_error: type[BaseException] | None = None
) -> Verdict | None:
    """The verdict for an error raised through SQLAlchemy.

    A ``DBAPIError`` is judged by ``classify`` on the driver's own exception (``exc.orig``), and so is a
    raw driver error (an instance of ``driver_error``) from the bulk paths SQLAlchemy does not wrap
    (COPY, executemany). What the dialect does not recognise is fatal, except that a connection
    SQLAlchemy saw drop (``connection_invalidated``) is always transient. Any other SQLAlchemy error is
    fatal; anything else (a bug, an interrupt) is not a database error: None.
    """
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    if isinstance(exc, DBAPIError):
        orig = exc.orig
        verdict = classify(orig) if orig is not None else None
        text = verdict.text if verdict is not None else first_line(str(orig if orig is not None else exc))
        if exc.connection_invalidated and (verdict is None or not verdict.transient):
            return transient(text, "the connection to the server was lost")
        return verdict if verdict is not None else fatal(text)
    if isinstance(exc, SQLAlchemyError):
        return fatal(first_line(str(exc)))
    if driver_error is not None and isinstance(exc, driver_error):
        return classify(exc) or fatal(first_line(str(exc)))
    return None
