"""A dry run prints each read as SQLAlchemy compiles it in the source's dialect; the kept text
(connectors/read_text.py), which spares a later dry run the SQLAlchemy import, reads the same."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from connectors import open_connector, read_text
from connectors.base import ReadRequest, TableName
from script_factory.steps.sql_script import bind_names
from utilities.secrets import Secret

URLS = {
    "sqlite": "sqlite:///src.db",
    "postgresql": "postgresql://u@h/db",
    "mysql": "mysql://u@h/db",
    "mariadb": "mariadb://u@h/db",
}
START, END = datetime(2024, 1, 1), datetime(2024, 1, 2, 3, 4, 5, 6)
PARAMS = {"load_type": "I", "run_id": 7, "project": "p", "start_date": START, "end_date": END}
SQL = "SELECT id, \"Mixed\", 'a:b' AS c, 50 % 7 AS m, updated_at FROM orders -- :end_date\nWHERE id > :run_id"
REQUESTS = [
    ReadRequest(table=TableName("orders", "sales"), params=PARAMS, cursor="updated_at", filtered=True,
                window_start=START, window_end=END),
    ReadRequest(table=TableName("Order Lines"), params=PARAMS, cursor="select", filtered=True, window_start=START),
    ReadRequest(table=TableName("orders"), params=PARAMS),
    ReadRequest(sql=SQL, params=PARAMS, cursor="updated_at", filtered=True, window_start=START, window_end=END),
    ReadRequest(sql=SQL, params=PARAMS),
    ReadRequest(sql=SQL, params=PARAMS, columns=("id", "Mixed"), cursor="updated_at", filtered=True,
                window_start=START, window_end=END),
]  # fmt: skip


@pytest.mark.parametrize("scheme", sorted(URLS))
@pytest.mark.parametrize("number", range(len(REQUESTS)))
def test_the_kept_read_is_what_sqlalchemy_compiles(tmp_path: Path, scheme: str, number: int) -> None:
    request = REQUESTS[number]
    connector = open_connector("src", Secret(URLS[scheme]), tmp_path)
    compiled = connector.describe_read(request)  # no store: SQLAlchemy
    moved = datetime(2025, 5, 5) if request.window_start else None
    later = replace(request, window_start=moved, params={**PARAMS, "run_id": 8})
    later_compiled = connector.describe_read(later)
    with read_text.kept_in(tmp_path / "reads"):
        assert connector.describe_read(request) == compiled  # a miss: compiled, checked, kept
        name = read_text.key(connector, request)
        kept = read_text.lookup(name)
        assert kept is not None, "the entry was kept"
        assert kept.shown(request) == compiled
        assert read_text.lookup(read_text.key(connector, later)) == kept  # the same shape: the same entry
        assert connector.describe_read(later) == later_compiled  # a hit, with this run's values


def test_an_entry_nobody_else_may_write_is_the_only_one_read(tmp_path: Path) -> None:
    connector = open_connector("src", Secret(URLS["sqlite"]), tmp_path)
    request = REQUESTS[0]
    with read_text.kept_in(tmp_path / "reads"):
        connector.describe_read(request)
        name = read_text.key(connector, request)
        entry = tmp_path / "reads" / f"{name}.json"
        entry.write_text(entry.read_text().replace("SELECT", "DELETE"))
        assert read_text.lookup(name) is not None  # the user's own file is trusted (it is the user's)
        os.chmod(entry, 0o666)
        assert read_text.lookup(name) is None
        os.chmod(entry, 0o600)
        os.chmod(tmp_path / "reads", 0o777)
        assert read_text.lookup(name) is None
        assert "DELETE" not in connector.describe_read(request)


@pytest.mark.parametrize(
    "text",
    [
        "select :a, :b_1 from t where x = :a",
        "select '::text', x::int, :c::int, a\\:b, :d:e, :f, 'x':g, (:h)",
        "select :ä, :1x, ::y, :z_",
        "select 1",
    ],
)
def test_bind_names_are_those_of_sqlalchemy_text(text: str) -> None:
    from sqlalchemy import text as sql_text

    assert bind_names(text) == set(sql_text(text).compile().params)
