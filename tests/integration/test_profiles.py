"""Profiles (``profile: true``): the figures in ``etl_profiles`` equal the same figures computed in SQL
on the rows the load wrote, for a full load and for an incremental merge (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import query, run_cli
from tests.projects import items_project, items_rows, sqlite_items

FIGURES = "count(*), count({c}), count(DISTINCT {c}), min({c}), max({c})"


def _rows(first: int, count: int) -> list[tuple]:
    rows = items_rows(count, start_id=first)
    # some NULL names and amounts, and repeated names: null % and distinct counts that are not trivial
    return [
        (i, None if i % 5 == 0 else f"name {i % 7}" + "x" * (i % 3), None if i % 4 == 0 else amount, at)
        for i, _, amount, at in rows
    ]


def _profile(warehouse: str, run_id: int, column: str) -> tuple:
    return query(
        warehouse,
        "SELECT rows, null_count, distinct_count, min_value, max_value, max_length FROM etl_profiles "
        "WHERE run_id = :run AND table_name = 'items' AND column_name = :column",
        run=run_id,
        column=column,
    )[0]


def _sql(warehouse: str, where: str, column: str) -> tuple:
    total, present, distinct, low, high = query(warehouse, f"SELECT {FIGURES.format(c=column)} FROM items {where}")[0]
    length = "length" if warehouse.startswith("sqlite") else "char_length"
    longest = query(warehouse, f"SELECT max({length}(CAST(name AS VARCHAR(100)))) FROM items {where}")[0][0]
    return total, total - present, distinct, low, high, longest


@pytest.mark.parametrize("strategy", ["merge", "append"])
def test_profiles_equal_sql_on_the_rows_loaded(etl_home: Path, warehouse: str, strategy: str) -> None:
    items_project(etl_home, strategy=strategy, extra="profile: true")
    source = etl_home / "metadata" / "src.db"
    sqlite_items(source, _rows(1, 200))
    first = run_cli("--project", "items_demo", "--load-type", "F")
    assert first.code == 0, first.stderr + first.stdout
    sqlite_items(source, _rows(201, 40))  # 40 new rows
    second = run_cli("--project", "items_demo")
    assert second.code == 0, second.stderr + second.stdout

    runs = [r[0] for r in query(warehouse, "SELECT run_id FROM etl_runs ORDER BY run_id")]
    for run_id, where in ((runs[0], "WHERE id <= 200"), (runs[1], "WHERE id > 200")):
        total, nulls, distinct, low, high, longest = _sql(warehouse, where, "name")
        rows, null_count, distinct_count, min_value, max_value, max_length = _profile(warehouse, run_id, "name")
        assert (rows, null_count, distinct_count, min_value, max_value, max_length) == (
            total,
            nulls,
            distinct,
            low,
            high,
            longest,
        )
        total, nulls, distinct, low, high, _ = _sql(warehouse, where, "amount")
        rows, null_count, distinct_count, min_value, max_value, max_length = _profile(warehouse, run_id, "amount")
        assert (rows, null_count, distinct_count, max_length) == (total, nulls, distinct, None)
        assert (float(min_value), float(max_value)) == (float(low), float(high))
    assert _profile(warehouse, runs[1], "name")[0] == 40
    null_pct = query(warehouse, "SELECT null_pct FROM etl_profiles WHERE run_id = :r AND column_name = 'id'", r=runs[1])
    assert null_pct == [(0.0,)]


def test_no_profile_without_the_flag(etl_home: Path, warehouse: str) -> None:
    items_project(etl_home)
    sqlite_items(etl_home / "metadata" / "src.db", _rows(1, 20))
    assert run_cli("--project", "items_demo").code == 0
    assert query(warehouse, "SELECT count(*) FROM etl_profiles") == [(0,)]
