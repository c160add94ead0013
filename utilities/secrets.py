"""Secrets: a value type that never prints itself, and masking of secrets in any text."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

# user:password@ in any URL, and key=value / "key": "value" pairs whose key names a secret, except
# MySQL's "(using password: YES)" / "(using password: NO)", which says whether a password was sent.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@\s]+)(?P<tail>@)")
_KEY_VALUE = re.compile(
    r"(?P<head>\b[\w\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key)[\w\-]*"
    r"[\"']?\s*[=:]\s*[\"']?)(?!(?:YES|NO)\))(?P<secret>[^\s\"'&;,)]+)",
    re.IGNORECASE,
)


class Secret:
    """A string that masks itself in ``str``/``repr``; call :meth:`reveal` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value: pass it to a driver, never to a log, an audit row or an e-mail."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class Masker:
    """Replaces known secret values, URL passwords and ``password=...`` pairs with ``***``."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self._known: list[str] = []
        self.add(known)

    def add(self, values: Iterable[str]) -> None:
        """Remember more secret values (longest first, so a secret containing another masks whole)."""
        merged = set(self._known) | {v for v in values if v and len(v) >= 4}
        self._known = sorted(merged, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._known:
            if value in text:
                text = text.replace(value, MASK)
        text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)
        return _KEY_VALUE.sub(lambda m: f"{m['head']}{MASK}", text)


SECRET_MARKERS = (
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "ACCESS_KEY",
    "PRIVATE_KEY",
    "CREDENTIALS_JSON",
    "PII_KEY",
)


def is_secret_name(name: str) -> bool:
    """True for environment variable names whose whole value is a secret (passwords, tokens, keys)."""
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)
