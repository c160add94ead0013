"""The load window: which rows a table's load takes, as ``start < cursor <= end``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from script_factory.request import LoadType, RunRequest
from utilities.dates import CursorValue, as_datetime, extreme, zone
from utilities.errors import ConfigError

if TYPE_CHECKING:
    from script_factory.config import ProjectConfig


@dataclass(frozen=True)
class Window:
    """The rows to load: ``start < cursor <= end``; ``filtered`` is False for an unbounded full load.

    ``start_reason`` says where ``start`` came from, for the log and ``--dry-run``.
    ``previous_max`` is the watermark the window started from (incremental runs only);
    ``watermark`` is the table's stored watermark whatever the load type (see :func:`next_watermark`).
    """

    start: CursorValue
    end: CursorValue | None
    filtered: bool
    start_reason: str
    previous_max: CursorValue | None = None
    watermark: CursorValue | None = None

    def describe(self) -> str:
        if not self.filtered:
            return "all rows (full load)"
        upper = f" <= {self.end}" if self.end is not None else ""
        return f"{self.start} < cursor{upper}  (start: {self.start_reason})"


def resolve_window(
    *,
    load_type: LoadType,
    requested_start: datetime | None,
    requested_end: datetime | None,
    previous_max: CursorValue | None,
    initial_start: datetime,
    lookback: timedelta,
    now: datetime,
    source_zone: tzinfo,
) -> Window:
    """The window for one table, by the rule in DESIGN.md.

    ``start`` is ``--start-date``, else (incremental only) the previous successful run's
    ``data_max_date`` less ``lookback``, else ``initial_start``. ``end`` is ``--end-date``, else
    ``now``. A full load without ``--start-date`` is unbounded (every row, NULL cursors included).
    ``now`` is aware; it is turned naive in ``source_zone`` when the start is naive, so that the two
    ends always compare with the source's cursor the same way.
    """
    watermark = previous_max
    if load_type is LoadType.FULL:
        previous_max = None
    if requested_start is not None:
        start: CursorValue = requested_start
        reason = "--start-date"
    elif previous_max is not None:
        start = _less(previous_max, lookback)
        reason = "watermark of the previous successful run" + (f" less lookback {lookback}" if lookback else "")
    else:
        start = initial_start
        reason = "initial_start" if load_type is LoadType.INCREMENTAL else "full load"
    end: CursorValue | None = requested_end if requested_end is not None else _now_like(start, now, source_zone)
    filtered = load_type is LoadType.INCREMENTAL or requested_start is not None or requested_end is not None
    if filtered and end is not None and _comparable(start, end) and not start < end:  # type: ignore[operator]
        raise ConfigError(f"the load window is empty: start {start} is not before end {end}")
    return Window(
        start=start, end=end, filtered=filtered, start_reason=reason, previous_max=previous_max, watermark=watermark
    )


def resolve_windows(
    project: ProjectConfig,
    request: RunRequest,
    now: datetime,
    watermark: Callable[[str], CursorValue | None] | None,
) -> tuple[dict[str, Window], Window]:
    """Each table's window (from its own watermark), and the run's window for the tasks that load no table
    (the window of the table that starts earliest; the run's own window when there is no table).

    ``watermark(table)`` reads a table's stored watermark; None means there is none to read (a dry run
    before the first run).
    """
    windows = {
        str(t.target): _window(project, request, watermark(str(t.target)) if watermark and t.cursor else None, now)
        for t in project.tables
    }
    if not windows:
        return windows, _window(project, request, None, now)
    earliest = extreme([w.start for w in windows.values()], min)
    return windows, next(w for w in windows.values() if w.start is earliest)


def _window(project: ProjectConfig, request: RunRequest, previous: CursorValue | None, now: datetime) -> Window:
    return resolve_window(
        load_type=request.load_type,
        requested_start=request.start_date,
        requested_end=request.end_date,
        previous_max=previous,
        initial_start=project.initial_start,
        lookback=project.lookback,
        now=now,
        source_zone=zone(project.timezone),
    )


def next_watermark(window: Window, data_max: CursorValue | None) -> CursorValue | None:
    """Where the table's next incremental window starts, after a successful load of ``window``.

    The later of the stored watermark and the load's ``data_max``, so a run with explicit dates (a
    backfill of an old window, or a reload of one) never moves the watermark backwards: the next
    plain incremental run then neither re-reads everything since the backfilled window nor appends
    rows twice. A full reload without dates rebuilt the table from every source row, so its
    ``data_max`` is the truth, even when it is lower.
    """
    if not window.filtered or window.watermark is None:
        return data_max
    if data_max is None:
        return window.watermark
    try:
        return max(data_max, window.watermark, key=as_datetime)
    except TypeError:  # the cursor changed type (e.g. integer -> timestamp): the new value wins
        return data_max


def check_requested_start(start: datetime | None, end: datetime | None, now: datetime, source_zone: tzinfo) -> None:
    """ConfigError when ``--start-date`` is not before now and no ``--end-date`` is given: the window
    (which would end now) is empty whatever the warehouse holds, so the run stops before connecting."""
    if start is None or end is not None:
        return
    current = now if start.tzinfo is not None else now.astimezone(source_zone).replace(tzinfo=None)
    if start >= current:
        raise ConfigError(
            f"--start-date {start.isoformat(' ')} is not before now ({current.isoformat(' ', 'seconds')} in the "
            f"project's time zone {source_zone}): give an earlier date, or an --end-date too"
        )


def _less(value: CursorValue, lookback: timedelta) -> CursorValue:
    if not lookback:
        return value
    if isinstance(value, (datetime, date)):
        return value - lookback
    raise ConfigError(f"a lookback ({lookback}) needs a date or datetime cursor, but the watermark is {value!r}")


def _now_like(start: CursorValue, now: datetime, source_zone: tzinfo) -> CursorValue | None:
    """``now`` in the same kind as ``start``; None (no upper bound) for integer or text cursors."""
    if isinstance(start, datetime) and start.tzinfo is None:
        return now.astimezone(source_zone).replace(tzinfo=None)
    if isinstance(start, datetime):
        return now
    if isinstance(start, date):
        return now.astimezone(source_zone).replace(tzinfo=None)
    return None


def _comparable(a: CursorValue, b: CursorValue) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        return (a.tzinfo is None) == (b.tzinfo is None)
    return type(a) is type(b)
