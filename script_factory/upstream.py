"""``depends_on``: whether each upstream project's latest run succeeded recently enough for this one to run.

The runner asks before its first task, so nothing but the warehouse has been connected when a run stops
here (exit code 5, the run's audit row closed as ``skipped``). An upstream project is ready when its
latest ``etl_runs`` row in the warehouse is a success that ended within ``max_age``; a run of it still
going, a failure, a skipped run or no run at all is not ready.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from script_factory.audit import SUCCESS, as_utc, etl_runs
from script_factory.config import DependencySpec
from utilities.errors import UpstreamNotReady

if TYPE_CHECKING:
    from sqlalchemy import Connection


def check_upstreams(conn: Connection, project: str, upstreams: Sequence[DependencySpec], now: datetime) -> None:
    """Raise UpstreamNotReady naming every upstream project that is not ready, and its state."""
    problems = [p for p in (not_ready(conn, u, now) for u in upstreams) if p]
    if problems:
        raise UpstreamNotReady(f"upstream not ready, {project} skipped: " + "; ".join(problems))


def not_ready(conn: Connection, upstream: DependencySpec, now: datetime) -> str | None:
    """Why ``upstream`` is not ready (one phrase naming it and its state), or None when it is."""
    row = conn.execute(
        select(etl_runs.c.run_id, etl_runs.c.status, etl_runs.c.start_execution_time, etl_runs.c.end_execution_time)
        .where(etl_runs.c.project == upstream.project)
        .order_by(etl_runs.c.run_id.desc())
        .limit(1)
    ).first()
    name = f"project {upstream.project}"
    if row is None:
        return f"{name} has never run in this warehouse (run it first)"
    run_id, status, started, ended = row
    if status != SUCCESS:
        when = as_utc(ended or started)
        return f"{name}: its latest run {run_id} is {status} (since {_moment(when)}); it must succeed first"
    ended_at = as_utc(ended) or as_utc(started)
    assert ended_at is not None
    age = now - ended_at
    if upstream.max_age is not None and age > upstream.max_age:
        return (
            f"{name}: its latest run {run_id} succeeded {age_text(age)} ago, at {_moment(ended_at)}, "
            f"longer ago than max_age {age_text(upstream.max_age)}"
        )
    return None


def age_text(age: timedelta) -> str:
    """``2d 3h``, ``6h 5m``, ``12m``, ``40s``: a duration as an operator reads it."""
    seconds = max(int(age.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    text = " ".join(p for p in parts if p)
    return text or f"{seconds}s"


def _moment(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "an unknown time"
