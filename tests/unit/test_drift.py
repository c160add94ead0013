"""The day buckets and checksums of ``--verify`` (script_factory/drift.py): one spelling per value
whatever the engine returned, the window rule for days, and a checksum that ignores row order."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from script_factory.drift import NotADate, Tally, canonical, cursor_datetime, day_of, day_window, differences


@pytest.mark.parametrize(
    "spellings",
    [
        (Decimal("1.50"), 1.5, "1.5", Decimal("1.5000")),  # PostgreSQL, SQLite NUMERIC (REAL), text, MariaDB
        (10, Decimal("10.0000"), 10.0, "10"),
        (Decimal("-0.0001"), -0.0001, "-0.0001"),
        (0, Decimal("-0.00"), 0.0, -0.0),
        (True, 1),
        (
            datetime(2024, 1, 2, 10, 0, 0, 5),
            "2024-01-02 10:00:00.000005",
            "2024-01-02T10:00:00.000005",
            datetime(2024, 1, 2, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))),  # the same instant in UTC
            "2024-01-02 10:00:00.000005+00:00",
        ),
        (date(2024, 1, 2), datetime(2024, 1, 2), "2024-01-02", "2024-01-02 00:00:00"),
        (b"\x00\xff", memoryview(b"\x00\xff")),
    ],
)
def test_the_same_value_from_any_engine_has_one_spelling(spellings: tuple[object, ...]) -> None:
    assert len({canonical(v) for v in spellings}) == 1, [canonical(v) for v in spellings]


@pytest.mark.parametrize(
    "a, b",
    [(None, ""), (None, "0"), ("1.5", "1.50x"), (1, "01x"), ("abc", "abd"), (1, 2), (datetime(2024, 1, 1), 20240101)],
)
def test_different_values_are_spelled_apart(a: object, b: object) -> None:
    assert canonical(a) != canonical(b)


def test_a_day_is_the_window_after_its_midnight_up_to_the_next() -> None:
    assert day_of(datetime(2024, 1, 2, 0, 0, 0)) == date(2024, 1, 1)  # exactly midnight: the day before
    assert day_of(datetime(2024, 1, 2, 0, 0, 0, 1)) == date(2024, 1, 2)
    assert day_of(datetime(2024, 1, 2, 23, 59, 59, 999999)) == date(2024, 1, 2)
    start, end = day_window(date(2024, 1, 1), aware=False)
    assert (start, end) == (datetime(2024, 1, 1), datetime(2024, 1, 2))
    assert start < datetime(2024, 1, 2) <= end  # the repair window of day 2024-01-01 holds the midnight row
    assert day_window(date(2024, 1, 1), aware=True)[0] == datetime(2024, 1, 1, tzinfo=UTC)


def test_cursor_values_become_datetimes_or_are_refused() -> None:
    assert cursor_datetime("2024-01-02 03:04:05") == datetime(2024, 1, 2, 3, 4, 5)
    assert cursor_datetime(date(2024, 1, 2)) == datetime(2024, 1, 2)
    assert cursor_datetime(None) is None
    with pytest.raises(NotADate):
        cursor_datetime(42)
    with pytest.raises(NotADate):
        cursor_datetime("not a date")


def rows(count: int) -> list[tuple[object, ...]]:
    base = datetime(2024, 1, 1)
    return [(i, f"k{i}", base + timedelta(hours=5 * i)) for i in range(count)]


def tally(data: list[tuple[object, ...]], bound: datetime | None = None) -> Tally:
    result = Tally(bound=bound)
    for start in range(0, len(data), 7):  # in chunks, as a stream comes
        result.add_chunk(data[start : start + 7], [0, 1], 2)
    return result


def test_the_checksum_ignores_order_and_sees_a_changed_moved_or_doubled_row() -> None:
    data = rows(50)
    shuffled = data[:]
    random.Random(7).shuffle(shuffled)
    assert differences(tally(data), tally(shuffled)) == []
    changed = data[:10] + [(10, "k10", data[10][2] + timedelta(microseconds=1))] + data[11:]
    (diff,) = differences(tally(data), tally(changed))
    assert diff.day == day_of(data[10][2]) and diff.source.count == diff.target.count and diff.checksums_differ
    doubled = data + [data[3], data[3]]
    (diff,) = differences(tally(data), tally(doubled))
    assert (diff.source.count + 2, diff.day) == (diff.target.count, day_of(data[3][2]))
    moved = data[:5] + [(5, "k5", data[5][2] + timedelta(days=3))] + data[6:]
    assert [d.day for d in differences(tally(data), tally(moved))] == sorted(
        {day_of(data[5][2]), day_of(data[5][2] + timedelta(days=3))}
    )


def test_rows_after_the_bound_are_counted_not_compared_and_null_cursors_have_their_own_day() -> None:
    data = rows(20)
    bound = data[9][2]
    side = tally([*data, (99, "n", None)], bound=bound)
    assert side.after_bound == 10
    assert side.rows == 11 and side.days[None].count == 1
    (diff,) = differences(side, tally(data, bound=bound))
    assert diff.day is None  # the NULL-cursor row, sorted last
