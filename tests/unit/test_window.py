"""The load window: start < cursor <= end, from --start-date, the watermark or initial_start."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from script_factory.request import LoadType
from script_factory.window import next_watermark, resolve_window
from utilities.dates import zone
from utilities.errors import ConfigError

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
INITIAL = datetime(2024, 1, 1)


def window(load_type=LoadType.INCREMENTAL, start=None, end=None, previous=None, lookback=timedelta(0), tz="UTC"):
    return resolve_window(
        load_type=load_type,
        requested_start=start,
        requested_end=end,
        previous_max=previous,
        initial_start=INITIAL,
        lookback=lookback,
        now=NOW,
        source_zone=zone(tz),
    )


def test_first_incremental_run_starts_at_initial_start() -> None:
    w = window()
    assert (w.start, w.end, w.filtered) == (INITIAL, datetime(2026, 11, 22, 12, 0, 0), True)
    assert w.start_reason == "initial_start"


def test_incremental_starts_at_the_previous_watermark_exactly() -> None:
    previous = datetime(2025, 3, 1, 10, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    w = window(previous=previous)
    assert w.start == previous and w.start.microsecond == 123456
    assert w.end == NOW  # an aware watermark gets an aware end
    assert w.previous_max == previous


def test_lookback_moves_the_start_back() -> None:
    w = window(previous=datetime(2025, 3, 1, 10, 0), lookback=timedelta(hours=2))
    assert w.start == datetime(2025, 3, 1, 8, 0)
    assert "lookback" in w.start_reason


def test_naive_end_is_now_in_the_source_time_zone() -> None:
    w = window(previous=datetime(2025, 3, 1), tz="Europe/Paris")
    assert w.end == datetime(2026, 11, 22, 13, 0, 0)


def test_explicit_dates_win_over_the_watermark() -> None:
    w = window(start=datetime(2026, 1, 1), end=datetime(2026, 1, 31), previous=datetime(2026, 6, 1))
    assert (w.start, w.end, w.start_reason) == (datetime(2026, 1, 1), datetime(2026, 1, 31), "--start-date")


def test_full_load_without_dates_is_unbounded_and_ignores_the_watermark() -> None:
    w = window(load_type=LoadType.FULL, previous=datetime(2026, 6, 1))
    assert not w.filtered
    assert w.previous_max is None
    assert w.describe() == "all rows (full load)"


def test_full_load_with_dates_is_a_window() -> None:
    w = window(load_type=LoadType.FULL, start=datetime(2026, 1, 1), end=datetime(2026, 2, 1))
    assert w.filtered and w.start == datetime(2026, 1, 1)


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty"):
        window(previous=datetime(2027, 1, 1))


def test_integer_cursor_has_no_upper_bound() -> None:
    w = window(previous=41)
    assert (w.start, w.end) == (41, None)
    assert w.describe().startswith("41 < cursor  (")


def test_date_watermark_gives_a_naive_end() -> None:
    w = window(previous=date(2026, 1, 1))
    assert w.start == date(2026, 1, 1) and isinstance(w.end, datetime) and w.end.tzinfo is None


# -- the watermark a successful load leaves for the next incremental run -------------------------

LATE = datetime(2026, 3, 1, 12, 0, 0)
EARLY = datetime(2025, 1, 15, 0, 0, 0)


def test_a_backfill_of_an_old_window_keeps_the_later_watermark() -> None:
    backfill = window(start=datetime(2025, 1, 1), end=datetime(2025, 1, 31), previous=LATE)
    assert next_watermark(backfill, EARLY) == LATE


def test_a_normal_incremental_run_moves_the_watermark_to_its_data_max() -> None:
    later = datetime(2026, 3, 2, 8, 0, 0, 1)
    assert next_watermark(window(previous=LATE), later) == later


def test_a_run_that_loads_nothing_keeps_the_watermark() -> None:
    assert next_watermark(window(previous=LATE), None) == LATE


def test_a_full_reload_without_dates_resets_the_watermark_to_what_it_loaded() -> None:
    assert next_watermark(window(LoadType.FULL, previous=LATE), EARLY) == EARLY


def test_a_full_reload_of_a_window_keeps_the_later_watermark() -> None:
    reload = window(LoadType.FULL, start=datetime(2025, 1, 1), end=datetime(2025, 2, 1), previous=LATE)
    assert next_watermark(reload, EARLY) == LATE


def test_watermarks_compare_as_instants_whatever_their_form() -> None:
    # SQLite hands cursors back as text; a date compares as its midnight
    assert next_watermark(window(previous=LATE), "2026-03-01 12:00:00.5") == "2026-03-01 12:00:00.5"
    assert next_watermark(window(previous=date(2026, 3, 2)), LATE) == date(2026, 3, 2)


def test_a_cursor_that_changed_type_takes_the_new_value() -> None:
    assert next_watermark(window(previous=1234), LATE) == LATE
