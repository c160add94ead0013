"""The contract every load target passes, whatever renders the operations (SQLAlchemy, Snowflake, BigQuery).

A target's test module subclasses ``TargetContract`` and overrides the ``target`` fixture: it creates
the table ``items (id, name, updated_at)`` holding ``BEFORE`` (``id`` nullable and without a primary
key, so the NULL and duplicate key checks are the load's, not a constraint's) and returns a
``ContractTarget``. The loads go through the engine's ``load`` exactly as a run does: the declared
strategy, turned into the applied one by the load type (F, I, I with dates, F with dates).

The source is ``SOURCE`` as it is now (row 3 changed, row 4 deleted, row 5 new); each load reads the
rows of its window from it, as a real source's windowed query does. What each strategy must leave
is computed by a four-line model (:func:`expected`), the rule the README states.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from connectors.base import Chunk, Connector, RowStream, TableName
from script_factory.config import Strategy
from script_factory.load_strategies import LoadPlan, effective_strategy, load, reads_window
from script_factory.request import LoadType
from script_factory.window import Window, next_watermark
from utilities.errors import FatalError
from utilities.progress import Progress

COLUMNS = ["id", "name", "updated_at"]
BEFORE = [
    (1, "one", datetime(2024, 1, 1)),
    (2, "two", datetime(2024, 1, 2)),
    (3, "three", datetime(2024, 1, 3)),
    (4, "four", datetime(2024, 1, 4)),
]
SOURCE = [
    (1, "one", datetime(2024, 1, 1)),
    (2, "two", datetime(2024, 1, 2)),
    (3, "three, changed", datetime(2024, 1, 3, 12)),
    (5, "five ✓", datetime(2024, 1, 3, 18)),
]
START, END = datetime(2024, 1, 2), datetime(2024, 1, 4)  # the watermark, and now
LOAD_TYPES = ["F", "I", "I with dates", "F with dates"]


@dataclass
class ContractTarget:
    """What a target's test provides: the connector, and the table's rows as (int, str, naive datetime)."""

    connector: Connector
    rows: Callable[[], list[tuple[Any, ...]]]


def window_for(load_type: str, start: Any = START) -> Window:
    """The window the runner resolves for ``load_type`` (dates given: ``START``..``END``)."""
    if load_type == "F":
        return Window(start=datetime(1900, 1, 1), end=END, filtered=False, start_reason="full load")
    return Window(start=start, end=END, filtered=True, start_reason=load_type, watermark=START)


def plan_for(declared: Strategy, load_type: str, window: Window) -> LoadPlan:
    kind = LoadType.FULL if load_type.startswith("F") else LoadType.INCREMENTAL
    applied = effective_strategy(declared, kind, window, "updated_at", explicit_window="dates" in load_type)
    return LoadPlan(TableName("items"), applied, ("id",), "updated_at", window)


def source_rows(window: Window, plan: LoadPlan) -> list[tuple[Any, ...]]:
    """The rows the source returns for ``plan``, as the load step asks for them."""
    if not (window.filtered and reads_window(plan.strategy)):
        return list(SOURCE)
    return [r for r in SOURCE if window.start < r[2] and (window.end is None or r[2] <= window.end)]


def stream_of(rows: list[tuple[Any, ...]], chunk: int = 1) -> RowStream:
    return RowStream(list(COLUMNS), iter([rows[i : i + chunk] for i in range(0, len(rows), chunk)]))


def expected(before: list[tuple[Any, ...]], plan: LoadPlan, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The model: what ``plan`` leaves in a table holding ``before`` after loading ``rows``."""
    window = plan.window
    if plan.strategy is Strategy.APPEND:
        return sorted([*before, *rows])
    if plan.strategy is Strategy.REPLACE:
        return sorted(rows)
    if plan.strategy is Strategy.DELETE_INSERT:
        return sorted([r for r in before if not (window.start < r[2] <= window.end)] + rows)
    merged = {r[0]: r for r in before} | {r[0]: r for r in rows}
    return sorted(merged.values())


def run_load(target: ContractTarget, plan: LoadPlan, rows: list[tuple[Any, ...]] | RowStream) -> Any:
    stream = rows if isinstance(rows, RowStream) else stream_of(rows)
    return load(target.connector, stream, plan, Progress("test", 3600))


class TargetContract:
    """Subclass, and override ``target`` as a fixture returning a ContractTarget (see the module docstring)."""

    @pytest.fixture
    def target(self) -> ContractTarget:
        raise NotImplementedError("override the target fixture")

    @pytest.mark.parametrize("load_type", LOAD_TYPES)
    @pytest.mark.parametrize("declared", list(Strategy), ids=[s.value for s in Strategy])
    def test_each_strategy_and_load_type_writes_what_the_readme_promises(
        self, target: ContractTarget, declared: Strategy, load_type: str
    ) -> None:
        window = window_for(load_type)
        plan = plan_for(declared, load_type, window)
        rows = source_rows(window, plan)

        stats = run_load(target, plan, rows)

        assert target.rows() == expected(BEFORE, plan, rows)
        assert stats.rows == len(rows)
        cursors = [r[2] for r in rows]
        assert (stats.data_min, stats.data_max) == (min(cursors), max(cursors)), "the cursor range returned"

    @pytest.mark.parametrize("load_type", LOAD_TYPES)
    @pytest.mark.parametrize("declared", list(Strategy), ids=[s.value for s in Strategy])
    def test_running_again_never_duplicates_rows(
        self, target: ContractTarget, declared: Strategy, load_type: str
    ) -> None:
        """The same command twice: with dates or F the same window again; a plain I run continues from
        the watermark the first one left (as the runner does)."""
        window = window_for(load_type)
        plan = plan_for(declared, load_type, window)
        stats = run_load(target, plan, source_rows(window, plan))
        once = target.rows()

        if load_type == "I":
            window = window_for(load_type, start=next_watermark(window, stats.data_max))
            plan = plan_for(declared, load_type, window)
        run_load(target, plan, source_rows(window, plan))

        assert target.rows() == once
        assert len({r[0] for r in once}) == len(once) or declared is Strategy.APPEND and load_type == "I"

    @pytest.mark.parametrize("applied", list(Strategy), ids=[s.value for s in Strategy])
    def test_a_source_failing_half_way_leaves_the_table_as_it_was(
        self, target: ContractTarget, applied: Strategy
    ) -> None:
        window = window_for("I")
        plan = LoadPlan(TableName("items"), applied, ("id",), "updated_at", window)
        rows = source_rows(window, plan)

        def chunks() -> Iterator[Chunk]:
            yield rows[:1]
            raise FatalError("the source connection dropped after the first chunk")

        with pytest.raises(FatalError, match="dropped after the first chunk"):
            run_load(target, plan, RowStream(list(COLUMNS), chunks()))
        assert target.rows() == BEFORE

        run_load(target, plan, rows)  # nothing was left behind (no staging table, no open transaction)
        assert target.rows() == expected(BEFORE, plan, rows)

    def test_a_null_key_fails_the_merge_with_one_line_and_writes_nothing(self, target: ContractTarget) -> None:
        plan = LoadPlan(TableName("items"), Strategy.MERGE, ("id",), "updated_at", window_for("I"))
        with pytest.raises(FatalError) as caught:
            run_load(target, plan, [(3, "x", datetime(2024, 1, 3, 1)), (None, "no key", datetime(2024, 1, 3, 2))])
        message = str(caught.value)
        assert "1 row(s) have a NULL key (id)" in message and "nothing was written" in message
        assert "\n" not in message
        assert target.rows() == BEFORE

    def test_a_duplicate_key_fails_the_merge_with_examples_and_writes_nothing(self, target: ContractTarget) -> None:
        plan = LoadPlan(TableName("items"), Strategy.MERGE, ("id",), "updated_at", window_for("I"))
        twice = [
            (3, "a", datetime(2024, 1, 3, 1)),
            (5, "b", datetime(2024, 1, 3, 2)),
            (3, "c", datetime(2024, 1, 3, 3)),
        ]
        with pytest.raises(FatalError) as caught:
            run_load(target, plan, twice)
        message = str(caught.value)
        assert "same key more than once (e.g. id=3)" in message and "nothing was written" in message
        assert "\n" not in message
        assert target.rows() == BEFORE

    def test_the_key_check_counts_every_null_row_and_names_the_first_three_duplicates(
        self, target: ContractTarget
    ) -> None:
        """One statement answers both questions: NULL keys are counted across their groups, and the first
        three repeated keys come in key order (a fourth is left out)."""
        plan = LoadPlan(TableName("items"), Strategy.MERGE, ("id",), "updated_at", window_for("I"))
        at = datetime(2024, 1, 3, 1)
        repeated = [(key, name, at) for key in (9, 7, 5, 3) for name in ("a", "b")]
        with pytest.raises(FatalError) as caught:
            run_load(target, plan, [*repeated, (None, "n1", at), (None, "n2", at), (None, "n3", at)])
        assert "3 row(s) have a NULL key (id)" in str(caught.value)
        with pytest.raises(FatalError) as caught:
            run_load(target, plan, [*repeated, (11, "once", at)])
        assert "(e.g. id=3; id=5; id=7)" in str(caught.value)
        assert target.rows() == BEFORE

    def test_an_empty_window_changes_nothing_and_reports_no_range(self, target: ContractTarget) -> None:
        plan = LoadPlan(TableName("items"), Strategy.MERGE, ("id",), "updated_at", window_for("I"))
        stats = run_load(target, plan, [])
        assert (stats.rows, stats.data_min, stats.data_max) == (0, None, None)
        assert target.rows() == BEFORE
