"""The load-target interface: the operations a target executes, and the session it runs them in.

What a load strategy *means* is decided once, in ``script_factory/load_strategies.py``, as a short
list of these operations. A target (SQLAlchemy databases, Snowflake, BigQuery) only renders and runs
them, inside one :class:`LoadSession` that commits on a clean exit and leaves the table as it was on
any error. Everything here is plain data, so the engine and every connector can share it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from connectors.base import Aggregate, Chunk, LoadStats, RowStream, TableName
from utilities.errors import FatalError

if TYPE_CHECKING:
    from utilities.progress import Progress

T = TypeVar("T")

STAGE, TARGET = "stage", "target"


@dataclass(frozen=True)
class LoadTarget:
    """The table a load session writes, the columns the source returns, and the names from project.yml."""

    table: TableName
    columns: tuple[str, ...]
    keys: tuple[str, ...] = ()
    cursor: str | None = None
    ddl: tuple[str, ...] = ()  # creates or alters the table first, in the load's transaction where it can


@dataclass(frozen=True)
class Bounds:
    """``start < cursor <= end`` (no upper bound when ``end`` is None)."""

    cursor: str
    start: Any
    end: Any = None


# -- the operations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteRows:
    """Stream the rows into the staging table (``into=STAGE``) or straight into the table (``TARGET``).

    When the writer cannot see the values (COPY pass-through), the cursor's range is read back from
    what was written: the whole staging table, or the table's rows within ``read_back``.
    """

    into: str
    read_back: Bounds | None = None


@dataclass(frozen=True)
class CheckKeys:
    """Count staged rows with a NULL key and find keys staged twice (the engine judges the report)."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class DedupeStage:
    """Remove the staged rows that have a staged row with the same ``keys`` and a later ``cursor`` (a NULL
    cursor is earliest); rows tied on the latest cursor all stay (a CheckKeys after it reports them)."""

    keys: tuple[str, ...]
    cursor: str


@dataclass(frozen=True)
class EmptyTable:
    """Remove every row of the table (inside the load's transaction)."""


@dataclass(frozen=True)
class DeleteWindow:
    """Remove the table's rows whose cursor is within ``bounds``."""

    bounds: Bounds


@dataclass(frozen=True)
class DeleteByKeys:
    """Remove the table's rows whose keys are staged."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class InsertFromStage:
    """Insert every staged row into the table."""


@dataclass(frozen=True)
class MergeFromStage:
    """Update the table's rows whose keys are staged, insert the others (one native statement)."""

    keys: tuple[str, ...]


Operation = (
    WriteRows | CheckKeys | DedupeStage | EmptyTable | DeleteWindow | DeleteByKeys | InsertFromStage | MergeFromStage
)


@dataclass(frozen=True)
class Written:
    """Which of the table's rows a load wrote, for reconciliation: every row (``replace``), those of the
    window (``bounds``: append, delete_insert), or those whose keys are staged (``keys``: merge)."""

    bounds: Bounds | None = None
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyReport:
    """What :class:`CheckKeys` found: staged rows with a NULL key, and up to three keys staged twice."""

    null_rows: int
    duplicates: tuple[tuple[Any, ...], ...] = ()


class LoadSession(ABC):
    """One atomic load into one table, opened by ``Connector.open_load``.

    The session's operations take effect together when the ``open_load`` block ends cleanly, and not
    at all if it raises; a target may run them as they come (one open transaction) or gather them and
    run them at the end (one transaction script).
    """

    @abstractmethod
    def write_rows(self, stream: RowStream, op: WriteRows, progress: Progress) -> LoadStats:
        """Write every row of ``stream`` where ``op`` says; report the rows and the cursor's range."""

    @abstractmethod
    def key_report(self, op: CheckKeys) -> KeyReport:
        """The staged rows' NULL and duplicate keys."""

    @abstractmethod
    def apply(self, op: Operation) -> None:
        """Run (or queue, for the commit) one of the operations that change the table."""

    def aggregates(self, aggregates: Sequence[Aggregate], written: Written) -> dict[str, Any]:
        """The ``aggregates`` of the rows the load wrote (before the commit), by label."""
        raise FatalError(f"load into {type(self).__name__}: this target cannot reconcile what it wrote")

    def sql_connection(self) -> Any:
        """The SQLAlchemy connection the load's transaction runs on, for writes that must commit with
        the rows (a SQL target only)."""
        raise FatalError(f"load into {type(self).__name__}: this target has no SQL transaction to join")


def match_columns(
    source_columns: Sequence[str], target_items: Mapping[str, T], target: LoadTarget, fix: str
) -> list[T]:
    """The target's item (column, field...) for each source column, matched case-insensitively, in
    source order. FatalError when the source returns a column the table lacks (``fix`` says where to
    add it) or lacks a key or cursor column named in project.yml."""
    by_lower = {name.lower(): item for name, item in target_items.items()}
    mapped = []
    for name in source_columns:
        if name.lower() not in by_lower:
            raise FatalError(
                f"load into {target.table}: the source returns column {name!r}, which table {target.table} "
                f"does not have; {fix} or drop it from the query"
            )
        mapped.append(by_lower[name.lower()])
    returned = {c.lower() for c in source_columns}
    for required in (*target.keys, *([target.cursor] if target.cursor else [])):
        if required.lower() not in returned:
            raise FatalError(
                f"load into {target.table}: the source does not return column {required!r} named in project.yml"
            )
    return mapped


def spelled(columns: Sequence[str], name: str) -> str:
    """The target's spelling (one of ``columns``) of a column named in project.yml."""
    return next(c for c in columns if c.lower() == name.lower())


def respell(op: Operation, columns: Sequence[str]) -> Operation:
    """``op`` with its key and cursor names in the target's spelling (one of ``columns``)."""
    if isinstance(op, DeleteWindow):
        return DeleteWindow(Bounds(spelled(columns, op.bounds.cursor), op.bounds.start, op.bounds.end))
    if isinstance(op, DeleteByKeys | MergeFromStage | CheckKeys):
        return type(op)(tuple(spelled(columns, k) for k in op.keys))
    if isinstance(op, DedupeStage):
        return DedupeStage(tuple(spelled(columns, k) for k in op.keys), spelled(columns, op.cursor))
    return op


class Tracker:
    """Passes row chunks through while counting rows, tracking the cursor's range and reporting progress."""

    def __init__(self, stream: RowStream, cursor: str | None, progress: Progress) -> None:
        self.stream = stream
        lowered = [c.lower() for c in stream.columns]
        self.cursor_index = lowered.index(cursor.lower()) if cursor and cursor.lower() in lowered else None
        self.progress = progress
        self.stats = LoadStats()

    def __iter__(self) -> Iterator[Chunk]:
        index = self.cursor_index
        stats = self.stats
        for chunk in self.stream:
            if not chunk:
                continue
            if index is not None:
                values = [row[index] for row in chunk if row[index] is not None]
                if values:
                    stats.widen(min(values), max(values))
            stats.rows += len(chunk)
            self.progress.advance(len(chunk))
            yield chunk
