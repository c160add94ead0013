"""Dates: parsing ISO dates from the command line, durations such as ``2h``, and the watermark codec."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# ISO 8601 as people type it: a date, optionally "T" or a space and a time, optionally Z or an offset.
# (datetime.fromisoformat alone would read "2026-01-31+02:00" as 02:00 on that day: any character
# separates date and time there.)
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,6})?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?$"
)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
ISO_DATETIME_PATTERN = _ISO_DATETIME.pattern  # what the project.yml JSON Schema accepts as a date
DURATION_PATTERN = _DURATION.pattern
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

CursorValue = datetime | date | int | str


def parse_iso_datetime(text: str) -> datetime:
    """Parse ``2026-01-31``, ``2026-01-31T08:00``, ``2026-01-31 08:00:00.5+02:00`` or ``...Z``.

    A bare date means midnight. Raises ``ValueError`` with the offending text.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty date")
    try:
        if not _ISO_DATETIME.match(value):
            raise ValueError
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date or datetime") from None


def parse_duration(text: str | int | float) -> timedelta:
    """Parse ``90s``, ``15m``, ``2h``, ``1d``, ``1w`` (or a number of seconds) into a timedelta."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return timedelta(seconds=float(text))
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration (expected e.g. 30m, 2h, 1d)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def zone(name: str) -> tzinfo:
    """The time zone called ``name`` (``UTC`` or an IANA name such as ``Europe/Paris``).

    Raises ``ValueError`` saying what was expected, or, when this Python finds no time zone database
    at all (Windows, slim Docker images without the ``tzdata`` package), that tzdata must be installed.
    """
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of the database, e.g. "Europe"
        if not available_timezones():
            raise ValueError(
                f"{name!r} cannot be looked up: this Python has no time zone database; "
                "install the tzdata package (pip install -r requirements.txt)"
            ) from None
        raise ValueError(
            f"{name!r} is not a time zone name (expected UTC or an IANA name such as Europe/Paris)"
        ) from None


def encode_cursor(value: CursorValue | None) -> str | None:
    """Store a cursor value as text without losing anything: ISO 8601 with offset and microseconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        raise TypeError("a boolean cannot be an incremental cursor")
    return str(value)


def decode_cursor(text: str | None) -> CursorValue | None:
    """The inverse of :func:`encode_cursor`: integers, dates and datetimes come back typed."""
    if text is None:
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        return text


def as_datetime(value: CursorValue) -> CursorValue:
    """Dates become midnight datetimes; ISO strings (as SQLite returns them) become datetimes."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def extreme(values: list[CursorValue], choose: Callable[..., Any]) -> CursorValue | None:
    """``min``/``max`` of cursor values that may mix dates, datetimes and ISO text; None if empty."""
    if not values:
        return None
    try:
        return choose(values)
    except TypeError:
        try:
            keyed = [(as_datetime(v), v) for v in values]
            return choose(keyed, key=lambda pair: pair[0])[1]
        except TypeError:
            return values[0]
