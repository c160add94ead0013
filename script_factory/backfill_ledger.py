"""The backfill ledger: ``etl_backfill_chunks``, one row per window of a backfill, and its states.

A backfill is identified by what its command line asked for (project, range, window length, load type,
``--tables``), so running the same command again finds its rows. A window's row is ``pending`` until a
run starts it, ``running`` while it runs, then ``success``, ``failed`` or ``interrupted`` (Ctrl-C or
SIGTERM). A row still ``running`` when a backfill starts was left by a process that died (it holds the
backfill's lock, so no other is running): it becomes ``interrupted``. Each function takes the caller's
connection, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, insert, select, update

from script_factory.audit import etl_backfill_chunks as chunks_table
from utilities.dates import encode_cursor, utc_now

if TYPE_CHECKING:
    from sqlalchemy import Connection

PENDING, RUNNING, SUCCESS, FAILED, INTERRUPTED = "pending", "running", "success", "failed", "interrupted"
DIED = "the backfill ended without closing this window (killed or crashed); its run was rolled back"


@dataclass(frozen=True)
class Chunk:
    """One window of a backfill as the ledger holds it."""

    chunk_id: int
    number: int
    start: datetime
    end: datetime
    status: str
    rows: int | None
    attempts: int
    run_id: int | None
    error: str | None


def prepare(
    conn: Connection,
    backfill_id: str,
    project: str,
    load_type: str,
    windows: Sequence[tuple[datetime, datetime]],
    restart: bool,
) -> list[Chunk]:
    """The backfill's windows, in order: its rows, created where missing (all anew with ``restart``);
    rows left ``running`` by a dead backfill become ``interrupted``."""
    key = chunks_table.c.backfill_id == backfill_id
    if restart:
        conn.execute(delete(chunks_table).where(key))
    conn.execute(
        update(chunks_table)
        .where(and_(key, chunks_table.c.status == RUNNING))
        .values(status=INTERRUPTED, ended_at=utc_now(), error_message=DIED)
    )
    present = {row[0] for row in conn.execute(select(chunks_table.c.chunk_number).where(key))}
    for number, (start, end) in enumerate(windows, 1):
        if number not in present:
            conn.execute(
                insert(chunks_table).values(
                    backfill_id=backfill_id,
                    project=project,
                    chunk_number=number,
                    window_start=encode_cursor(start),
                    window_end=encode_cursor(end),
                    load_type=load_type,
                    status=PENDING,
                    attempts=0,
                )
            )
    rows = conn.execute(select(chunks_table).where(key).order_by(chunks_table.c.chunk_number)).mappings()
    by_number = {row["chunk_number"]: dict(row) for row in rows}
    return [_chunk(by_number[n], start, end) for n, (start, end) in enumerate(windows, 1)]


def start(conn: Connection, chunk_id: int) -> None:
    """The window's run begins: ``running``, one attempt more."""
    conn.execute(
        update(chunks_table)
        .where(chunks_table.c.chunk_id == chunk_id)
        .values(
            status=RUNNING,
            attempts=chunks_table.c.attempts + 1,
            started_at=utc_now(),
            ended_at=None,
            run_id=None,
            rows=None,
            error_message=None,
        )
    )


def finish(conn: Connection, chunk_id: int, values: Mapping[str, Any]) -> None:
    """Close the window's row (``status``, ``rows``, ``run_id``, ``error_message``)."""
    conn.execute(update(chunks_table).where(chunks_table.c.chunk_id == chunk_id).values(ended_at=utc_now(), **values))


def states(conn: Connection, backfill_id: str) -> list[tuple[int, str]]:
    """(chunk number, status) of every window of the backfill, in order."""
    query = (
        select(chunks_table.c.chunk_number, chunks_table.c.status)
        .where(chunks_table.c.backfill_id == backfill_id)
        .order_by(chunks_table.c.chunk_number)
    )
    return [(int(n), str(s)) for n, s in conn.execute(query)]


def _chunk(row: Mapping[str, Any], start: datetime, end: datetime) -> Chunk:
    return Chunk(
        chunk_id=int(row["chunk_id"]),
        number=int(row["chunk_number"]),
        start=start,
        end=end,
        status=str(row["status"]),
        rows=row["rows"],
        attempts=int(row["attempts"] or 0),
        run_id=row["run_id"],
        error=row["error_message"],
    )
