"""Day buckets and checksums for ``--verify``: keys and cursor normalised across engines, then one
count and one order-independent checksum per day of the cursor.

**The day rule.** Day ``D`` is the load window ``D 00:00 < cursor <= D+1 00:00`` (the rule of every
window, ``start < cursor <= end``), so a row at exactly midnight belongs to the day *before*, and a
repair of day ``D`` (a run with ``--start-date D --end-date D+1``) reloads exactly the rows counted
for ``D``. A ``DATE`` cursor is midnight too: the value ``2024-01-02`` is counted for day 2024-01-01.
Aware timestamps are compared in UTC; naive ones as they are (the zone of the source).

**The checksum.** Each row's keys and cursor become one canonical text (NULL, numbers, timestamps and
text each in one spelling, whatever the engine returned: SQLite's text timestamps and floats,
PostgreSQL's datetimes and Decimals, MariaDB's Decimals...), hashed to 64 bits (BLAKE2b); a day's
checksum is the sum of its rows' hashes modulo 2**64, so it does not depend on the order of the rows
and a row twice is not a row cancelled out. A day agrees when its counts and checksums are equal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from hashlib import blake2b
from typing import Any

from utilities.dates import ISO_DATETIME_PATTERN, as_datetime

DAY_RULE = "day D is the window D 00:00 < cursor <= D+1 00:00 (a row at exactly midnight counts for the day before)"
MODULUS = 2**64

_ISO = re.compile(ISO_DATETIME_PATTERN)
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


class NotADate(ValueError):
    """A cursor value that is neither a date nor a timestamp: such a table cannot be compared by day."""


# -- normalising values -----------------------------------------------------------------------------


def moment(value: datetime) -> datetime:
    """``value`` as the naive datetime it is compared as: aware ones converted to UTC."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def cursor_datetime(value: Any) -> datetime | None:
    """A cursor value (datetime, date, or ISO text as SQLite returns it) as a datetime, aware or naive
    as it came; None for NULL; :class:`NotADate` for anything else (an integer cursor)."""
    if value is None:
        return None
    converted = as_datetime(value) if isinstance(value, (datetime, date, str)) else value
    if not isinstance(converted, datetime):
        raise NotADate(f"cursor value {value!r} is not a date or timestamp")
    return converted


def canonical(value: Any) -> str:
    """One spelling per value, whatever the engine returned: a tag, the text's length, the text."""
    tag, text = _spelled(value)
    return f"{tag}{len(text)}:{text}"


def _spelled(value: Any) -> tuple[str, str]:
    if value is None:
        return "0", ""
    if isinstance(value, bool):
        return "n", "1" if value else "0"
    if isinstance(value, (int, float, Decimal)):
        return "n", _number(value)
    if isinstance(value, (datetime, date)):
        return "t", _timestamp(as_datetime(value))  # type: ignore[arg-type]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "x", bytes(value).hex()
    if isinstance(value, str):
        if _NUMBER.match(value):
            return "n", _number(Decimal(value))
        if _ISO.match(value):
            try:
                return "t", _timestamp(datetime.fromisoformat(value))
            except ValueError:
                pass
        return "s", value
    return "s", str(value)  # UUID, time, interval...: their text


def _number(value: int | float | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    try:
        exact = value if isinstance(value, Decimal) else Decimal(repr(value))
    except InvalidOperation:
        return str(value)
    if not exact.is_finite():
        return str(exact)
    text = format(exact.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _timestamp(value: datetime) -> str:
    return moment(value).isoformat(sep=" ", timespec="microseconds")


def row_hash(keys: Sequence[Any], cursor: datetime | None) -> int:
    """The 64-bit hash of one row's keys and (normalised) cursor."""
    text = "".join(canonical(k) for k in keys) + canonical(cursor)
    return int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


# -- days -------------------------------------------------------------------------------------------


def day_of(value: datetime) -> date:
    """The day whose window ``D 00:00 < value <= D+1 00:00`` holds ``value``."""
    day = value.date()
    return day - timedelta(days=1) if value.time() == time(0) else day


def day_window(day: date, aware: bool) -> tuple[datetime, datetime]:
    """The window of ``day``: its midnight and the next one (in UTC when the cursor is aware)."""
    start = datetime.combine(day, time(0), tzinfo=UTC if aware else None)
    return start, start + timedelta(days=1)


@dataclass
class Figures:
    """A day's row count and checksum on one side."""

    count: int = 0
    checksum: int = 0

    def add(self, digest: int) -> None:
        self.count += 1
        self.checksum = (self.checksum + digest) % MODULUS


@dataclass
class Tally:
    """One side of a table, streamed chunk by chunk into per-day figures (memory grows with the days,
    not the rows). Rows after ``bound`` are only counted (``after_bound``); with ``only``, rows of other
    days are left out. Rows with a NULL cursor are counted under the day ``None``."""

    bound: datetime | None = None
    only: frozenset[date] | None = None
    days: dict[date | None, Figures] = field(default_factory=dict)
    after_bound: int = 0
    aware: bool = False  # an aware cursor value was seen (repairs then give the window in UTC)

    def add_chunk(self, rows: Sequence[Sequence[Any]], keys: Sequence[int], cursor: int) -> None:
        for row in rows:
            parsed = cursor_datetime(row[cursor])
            if parsed is not None and parsed.tzinfo is not None:
                self.aware = True
            value = moment(parsed) if parsed is not None else None
            if value is not None and self.bound is not None and value > self.bound:
                self.after_bound += 1
                continue
            day = day_of(value) if value is not None else None
            if self.only is not None and day not in self.only:
                continue
            figures = self.days.get(day)
            if figures is None:
                figures = self.days[day] = Figures()
            figures.add(row_hash([row[k] for k in keys], value))

    @property
    def rows(self) -> int:
        return sum(f.count for f in self.days.values())


@dataclass(frozen=True)
class DayDifference:
    """A day whose count or checksum differs between the source and the target (``day`` None: the rows
    whose cursor is NULL, which no window holds)."""

    day: date | None
    source: Figures
    target: Figures

    @property
    def checksums_differ(self) -> bool:
        return self.source.checksum != self.target.checksum


def differences(source: Tally, target: Tally) -> list[DayDifference]:
    """The days present on either side whose figures differ, in day order (NULL cursors last)."""
    found = []
    for day in source.days.keys() | target.days.keys():
        mine, theirs = source.days.get(day, Figures()), target.days.get(day, Figures())
        if (mine.count, mine.checksum) != (theirs.count, theirs.checksum):
            found.append(DayDifference(day, mine, theirs))
    return sorted(found, key=lambda d: (d.day is None, d.day or date.min))
