"""Load strategies: what each strategy does to a target, as a short list of operations, and the key checks.

This is the one place that decides what ``append``, ``replace``, ``delete_insert`` and ``merge`` mean
(see :func:`operations`). A target (``Connector.open_load``) only renders and runs the operations of
``connectors/target.py`` inside one session, which commits when the list is done and rolls back on
any error, so a failure at any point (kill -9 included) leaves the target as it was:

* ``append``        - rows are written into the table (straight in where the target can do it inside
                      its transaction, else through a staging table).
* ``replace``       - the table is emptied, then written, in the same transaction.
* ``delete_insert`` - rows go to a staging table first (the table is touched only once the source has
                      been read whole); then the table's rows in the window are deleted and the staged
                      rows inserted.
* ``merge``         - rows go to the staging table, are checked for NULL and duplicate keys (the load
                      fails with examples and writes nothing), then merged: one native statement
                      where the target has one (the target picks it: on PostgreSQL ``INSERT ... ON
                      CONFLICT`` on the key index for a small change, else ``MERGE``), else delete by
                      key + insert.

Which strategy a run applies also depends on the load type (see :func:`effective_strategy`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from connectors.base import Capabilities, LoadStats, RowStream, TableName
from connectors.target import (
    STAGE,
    TARGET,
    Bounds,
    CheckKeys,
    DedupeStage,
    DeleteByKeys,
    DeleteWindow,
    EmptyTable,
    InsertFromStage,
    KeyReport,
    LoadSession,
    LoadTarget,
    MergeFromStage,
    Operation,
    WriteRows,
    Written,
)
from script_factory.config import Strategy
from script_factory.request import LoadType
from script_factory.window import Window
from utilities import interrupts
from utilities.errors import FatalError

if TYPE_CHECKING:
    from connectors.base import Connector
    from utilities.progress import Progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadPlan:
    """How a stream is applied to a target table: the strategy this run applies, on which window."""

    target: TableName
    strategy: Strategy
    keys: tuple[str, ...]
    cursor: str | None
    window: Window
    ddl: tuple[str, ...] = ()  # creates or evolves the table first (script_factory/target_shape.py)
    dedupe: tuple[str, ...] = ()  # keep one staged row per these keys, the latest by cursor (dedupe:)


def effective_strategy(
    declared: Strategy, load_type: LoadType, window: Window, cursor: str | None, explicit_window: bool
) -> Strategy:
    """The strategy a run applies.

    * A full load without dates replaces the table. With dates, a table with a cursor reloads that
      window: a ``merge`` table merges the window's rows again (a row may have moved out of the
      window since, so deleting by window would lose it), any other table replaces the window
      (``delete_insert``).
    * An incremental ``append`` whose window may overlap rows already loaded (dates given on the
      command line, or a lookback) becomes ``delete_insert``, so re-running a window never
      duplicates rows.
    """
    if load_type is LoadType.FULL:
        if not (window.filtered and cursor):
            return Strategy.REPLACE
        return Strategy.MERGE if declared is Strategy.MERGE else Strategy.DELETE_INSERT
    if declared is Strategy.APPEND and explicit_window:
        return Strategy.DELETE_INSERT
    return declared


def reads_window(strategy: Strategy) -> bool:
    """Whether the source reads only the window's rows. A table that is replaced is read whole
    (a ``replace`` table with a cursor, in an incremental run, would otherwise keep only the window)."""
    return strategy is not Strategy.REPLACE


def operations(plan: LoadPlan, capabilities: Capabilities) -> tuple[Operation, ...]:
    """What ``plan.strategy`` does to the target, in order, for a target with ``capabilities``. With
    ``plan.dedupe``, the rows are always staged, deduplicated there, then their keys checked (a tie on
    the latest cursor fails the load), before the strategy's own operations."""
    ops = _strategy_operations(plan, capabilities)
    if not plan.dedupe:
        return ops
    if plan.cursor is None:
        raise FatalError(f"dedupe into {plan.target}: dedupe keeps the latest row by cursor: the table needs a cursor")
    dedupe: tuple[Operation, ...] = (DedupeStage(plan.dedupe, plan.cursor),)
    if not (len(ops) > 1 and ops[1] == CheckKeys(plan.dedupe)):
        dedupe += (CheckKeys(plan.dedupe),)
    return ops[0], *dedupe, *ops[1:]


def _strategy_operations(plan: LoadPlan, capabilities: Capabilities) -> tuple[Operation, ...]:
    bounds = _bounds(plan)
    direct = capabilities.direct_write and not plan.dedupe
    if plan.strategy is Strategy.APPEND:
        if direct:
            return (WriteRows(TARGET, read_back=bounds),)
        return WriteRows(STAGE), InsertFromStage()
    if plan.strategy is Strategy.REPLACE:
        if direct:
            return EmptyTable(), WriteRows(TARGET)
        return WriteRows(STAGE), EmptyTable(), InsertFromStage()
    if plan.strategy is Strategy.DELETE_INSERT:
        if bounds is None:
            raise FatalError(f"delete_insert into {plan.target} needs a cursor column and a load window")
        return WriteRows(STAGE), DeleteWindow(bounds), InsertFromStage()
    if not plan.keys:
        raise FatalError(f"merge into {plan.target}: keys: are required for the merge strategy")
    if capabilities.merge_statement:
        return WriteRows(STAGE), CheckKeys(plan.keys), MergeFromStage(plan.keys)
    return WriteRows(STAGE), CheckKeys(plan.keys), DeleteByKeys(plan.keys), InsertFromStage()


def written_rows(plan: LoadPlan) -> Written:
    """The table's rows a load of ``plan`` wrote, for reconciliation (see connectors/target.py)."""
    if plan.strategy is Strategy.MERGE:
        return Written(keys=plan.keys)
    if plan.strategy is Strategy.REPLACE:
        return Written()
    return Written(bounds=_bounds(plan))


def describe(ops: tuple[Operation, ...]) -> str:
    """The operations in words, for ``--dry-run``: ``stage rows -> check keys -> merge``."""
    return " -> ".join(_words(op) for op in ops)


def _words(op: Operation) -> str:
    if isinstance(op, WriteRows):
        return "stage the rows" if op.into == STAGE else "write the rows into the table"
    if isinstance(op, CheckKeys):
        return f"check keys {', '.join(op.keys)} (no NULL, no duplicate)"
    if isinstance(op, DedupeStage):
        return f"keep the latest staged row per {', '.join(op.keys)} (by {op.cursor})"
    if isinstance(op, DeleteWindow):
        return "delete the window's rows"
    if isinstance(op, DeleteByKeys):
        return "delete the rows whose keys are staged"
    if isinstance(op, MergeFromStage):
        return "merge the staged rows (one MERGE)"
    return "empty the table" if isinstance(op, EmptyTable) else "insert the staged rows"


def load(
    target: Connector,
    stream: RowStream,
    plan: LoadPlan,
    progress: Progress,
    before_commit: Callable[[LoadSession, LoadStats], None] | None = None,
) -> LoadStats:
    """Apply ``stream`` to ``plan.target`` with ``plan.strategy`` atomically; return what was written.

    ``before_commit(session, stats)`` runs after the operations, inside the same transaction: what it
    writes commits with the rows, and an error it raises rolls them back (gates, the table's state).
    """
    ops = operations(plan, target.capabilities)
    stats = LoadStats()
    with target.open_load(LoadTarget(plan.target, tuple(stream.columns), plan.keys, plan.cursor, plan.ddl)) as session:
        for op in ops:
            if isinstance(op, WriteRows):
                stats = session.write_rows(stream, op, progress)
            elif isinstance(op, CheckKeys):
                require_unique_keys(session.key_report(op), plan, op.keys)
            else:
                session.apply(op)
        if before_commit is not None:
            before_commit(session, stats)
        interrupts.check()  # a stop that came during the last statement (on a load's own thread) rolls back
    progress.finish()
    logger.info("%s into %s: %s rows through %s", plan.strategy.value, plan.target, f"{stats.rows:,}", stats.path)
    return stats


def require_unique_keys(report: KeyReport, plan: LoadPlan, checked: tuple[str, ...] = ()) -> None:
    """FatalError (nothing is written: the session rolls back) when staged keys are NULL or repeated."""
    keys = checked or plan.keys
    if report.null_rows:
        raise FatalError(
            f"{plan.strategy.value} into {plan.target}: {report.null_rows} row(s) have a NULL key ({', '.join(keys)}); "
            f"nothing was written"
        )
    if report.duplicates:
        examples = "; ".join(
            ", ".join(f"{k}={v!r}" for k, v in zip(keys, dup, strict=False)) for dup in report.duplicates
        )
        if plan.dedupe and keys == plan.dedupe:
            raise FatalError(
                f"{plan.strategy.value} into {plan.target}: dedupe found rows with the same key and the same latest "
                f"{plan.cursor} (e.g. {examples}), so it cannot tell which to keep; make the query return one "
                f"latest row per key; nothing was written"
            )
        raise FatalError(
            f"merge into {plan.target}: the source returns the same key more than once (e.g. {examples}); "
            f"make the query return one row per key; nothing was written"
        )


def _bounds(plan: LoadPlan) -> Bounds | None:
    if not (plan.window.filtered and plan.cursor):
        return None
    return Bounds(plan.cursor, plan.window.start, plan.window.end)
