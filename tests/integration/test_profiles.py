"""Profiles (``profile: true``): the figures in ``etl_profiles`` equal the same figures computed in SQL
on the rows the load wrote, for a full load and for an incremental merge (SQLite and PostgreSQL): the
exact figures exactly, the distinct count (PostgreSQL's ANALYZE estimate when the rows have a table of
their own) within ``TOLERANCE``. Protected columns keep no min or max; large loads elsewhere keep no
distinct count."""

from __future__ import annotations

from pathlib import Path

import pytest

from script_factory import profiling
from tests.conftest import query, run_cli
from tests.projects import items_project, items_rows, sqlite_items

TOLERANCE = 0.10  # of the exact distinct count (README, Profiles); exact below 30,000 rows in practice
KEY = "pii-test-key-0123456789-abcdefghijklmnop"
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
        assert (rows, null_count, min_value, max_value, max_length) == (total, nulls, low, high, longest)
        assert abs(distinct_count - distinct) <= TOLERANCE * distinct, (distinct_count, distinct)
        total, nulls, distinct, low, high, _ = _sql(warehouse, where, "amount")
        rows, null_count, distinct_count, min_value, max_value, max_length = _profile(warehouse, run_id, "amount")
        assert (rows, null_count, max_length) == (total, nulls, None)
        assert abs(distinct_count - distinct) <= TOLERANCE * distinct, (distinct_count, distinct)
        assert (float(min_value), float(max_value)) == (float(low), float(high))
    assert _profile(warehouse, runs[1], "name")[0] == 40
    null_pct = query(warehouse, "SELECT null_pct FROM etl_profiles WHERE run_id = :r AND column_name = 'id'", r=runs[1])
    assert null_pct == [(0.0,)]


def test_no_profile_without_the_flag(etl_home: Path, warehouse: str) -> None:
    items_project(etl_home)
    sqlite_items(etl_home / "metadata" / "src.db", _rows(1, 20))
    assert run_cli("--project", "items_demo").code == 0
    assert query(warehouse, "SELECT count(*) FROM etl_profiles") == [(0,)]


def test_protected_columns_keep_no_min_or_max(etl_home: Path, warehouse: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_PII_KEY", KEY)
    extra = "    columns:\n      name: {encrypt: true}\nprofile: true\n"
    items_project(etl_home, strategy="merge", extra=extra)
    sqlite_items(etl_home / "metadata" / "src.db", _rows(1, 50))
    result = run_cli("--project", "items_demo", "--load-type", "F")
    assert result.code == 0, result.stderr + result.stdout

    found = query(
        warehouse,
        "SELECT column_name, rows, null_count, min_value, max_value FROM etl_profiles ORDER BY column_name",
    )
    by_name = {r[0]: r[1:] for r in found}
    assert by_name["name"] == (50, 10, profiling.PROTECTED, profiling.PROTECTED)
    assert by_name["id"][2:] == ("1", "50")  # unprotected columns keep their values
    assert by_name["amount"][2] not in (None, profiling.PROTECTED)
    stored = {v for r in found for v in r[3:]}
    names = {r[0] for r in query(warehouse, "SELECT name FROM items WHERE name IS NOT NULL")}
    assert not stored & names  # no encrypted value either


def test_large_loads_elsewhere_keep_no_distinct_count(
    etl_home: Path, warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above EXACT_ROWS rows written, a target without a sample statistic (SQLite) does not sort every
    column for an exact count; PostgreSQL estimates from the staging table's ANALYZE."""
    monkeypatch.setattr(profiling, "EXACT_ROWS", 10)
    items_project(etl_home, strategy="merge", extra="profile: true")
    sqlite_items(etl_home / "metadata" / "src.db", _rows(1, 60))
    result = run_cli("--project", "items_demo", "--load-type", "F")
    assert result.code == 0, result.stderr + result.stdout

    counted = query(warehouse, "SELECT distinct_count, rows, null_count FROM etl_profiles WHERE column_name = 'id'")
    if warehouse.startswith("sqlite"):
        assert counted == [(None, 60, 0)]
    else:
        assert counted == [(60, 60, 0)]
