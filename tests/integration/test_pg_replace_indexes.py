"""A full reload into PostgreSQL builds the table's indexes after its rows are in, inside the load's
transaction, and the COPY pass-through reads the source in batches straight off libpq.

* The indexes and constraints after a reload are the ones before it (same definitions, same names).
  One a rebuild could change is left in place (a commented index).
* A unique index that the new rows break fails the load, and the table keeps its rows and indexes.
* A source that fails in the middle of its COPY, or a target that fails while the source is still
  sending, fails the load with the right connection named, and leaves the target as it was.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors import open_connector
from connectors.base import PGCOPY, ROWS, ReadRequest, RowStream, TableName
from script_factory.config import Strategy
from script_factory.load_strategies import LoadPlan, load
from script_factory.window import Window
from utilities.errors import EtlError
from utilities.progress import Progress
from utilities.secrets import Secret

WHOLE = Window(start=datetime(1, 1, 1), end=None, filtered=False, start_reason="test")
ROWS_IN_TABLE = 20_000  # wide enough rows for many COPY batches of 256 kB

TABLE_DDL = """
CREATE TABLE items (id integer PRIMARY KEY, code text NOT NULL, name text, amount numeric(12, 2),
                    updated_at timestamp, CONSTRAINT items_code_key UNIQUE (code) DEFERRABLE INITIALLY DEFERRED);
CREATE INDEX items_lower_name ON items (lower(name)) WHERE name IS NOT NULL;
CREATE INDEX items_updated ON items USING btree (updated_at DESC NULLS LAST) INCLUDE (amount);
CREATE INDEX items_commented ON items (amount);
COMMENT ON INDEX items_commented IS 'kept as it is by a reload';
"""

FILL = """
INSERT INTO items SELECT g, 'code-' || g, CASE WHEN g %% 10 = 0 THEN NULL ELSE repeat('name ' || g, 8) END,
       g / 100.0, timestamp '2024-01-01' + g * interval '1 minute'
  FROM generate_series(1, %(n)s) g
"""

INDEXES = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indexrelid::int
  FROM pg_index i WHERE i.indrelid = 'items'::regclass ORDER BY 1
"""
CONSTRAINTS = (
    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'items'::regclass ORDER BY 1"
)
CHECKSUM = "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) FROM items t"


@pytest.fixture
def warehouse(pg_url: str) -> Iterator[str]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(TABLE_DDL)
        conn.execute(FILL, {"n": 3})
        conn.execute("CREATE TABLE source_items (LIKE items)")
        conn.execute(FILL.replace("INSERT INTO items", "INSERT INTO source_items"), {"n": ROWS_IN_TABLE})
    yield pg_url


def fetch(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]


def reload(url: str, home: Path, request: ReadRequest) -> str:
    source = open_connector("src", Secret(url), home)
    target = open_connector("warehouse", Secret(url), home)
    try:
        with source.read(request) as stream:
            plan = LoadPlan(TableName("items"), Strategy.REPLACE, ("id",), None, WHOLE)
            return load(target, stream, plan, Progress("test", 3600)).path
    finally:
        source.close()
        target.close()


def pass_through(table: str = "source_items", query: str | None = None) -> ReadRequest:
    if query is not None:
        return ReadRequest(sql=query, accept=frozenset({PGCOPY, ROWS}))
    return ReadRequest(table=TableName(table), accept=frozenset({PGCOPY, ROWS}))


def test_a_reload_builds_every_index_again_as_it_was(
    warehouse: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = fetch(warehouse, INDEXES)
    constraints = fetch(warehouse, CONSTRAINTS)
    with caplog.at_level(logging.INFO, logger="connectors.sql_load"):
        assert reload(warehouse, tmp_path, pass_through()) == "COPY pass-through (binary)"

    after = fetch(warehouse, INDEXES)
    assert [(name, definition) for name, definition, _ in after] == [(n, d) for n, d, _ in before]
    assert fetch(warehouse, CONSTRAINTS) == constraints
    oids_before, oids_after = {n: o for n, _, o in before}, {n: o for n, _, o in after}
    # the commented index is left in place; the others are new
    assert {n for n in oids_after if oids_after[n] == oids_before[n]} == {"items_commented"}
    assert any("4 index(es) built after the rows were written" in r.getMessage() for r in caplog.records)
    assert fetch(warehouse, CHECKSUM) == fetch(warehouse, CHECKSUM.replace("items t", "source_items t"))
    with psycopg.connect(warehouse) as conn:  # the rebuilt primary key holds
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO items (id, code) VALUES (1, 'another code')")


def test_new_rows_that_break_a_unique_index_fail_the_load_and_keep_the_table(warehouse: str, tmp_path: Path) -> None:
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("UPDATE source_items SET id = 1 WHERE id = 2")
    before, indexes = fetch(warehouse, CHECKSUM), fetch(warehouse, INDEXES)

    with pytest.raises(EtlError, match="items_pkey"):
        reload(warehouse, tmp_path, pass_through())

    assert fetch(warehouse, CHECKSUM) == before
    assert fetch(warehouse, INDEXES) == indexes


def test_rows_from_python_also_get_their_indexes_back(warehouse: str, tmp_path: Path) -> None:
    indexes = fetch(warehouse, INDEXES)
    target = open_connector("warehouse", Secret(warehouse), tmp_path)
    rows = [(i, f"c{i}", None, None, None) for i in range(1, 501)]
    try:
        stream = RowStream(["id", "code", "name", "amount", "updated_at"], iter([rows]))
        load(target, stream, LoadPlan(TableName("items"), Strategy.REPLACE, ("id",), None, WHOLE), Progress("t", 60))
    finally:
        target.close()
    assert fetch(warehouse, "SELECT count(*) FROM items") == [(500,)]
    assert [(n, d) for n, d, _ in fetch(warehouse, INDEXES)] == [(n, d) for n, d, _ in indexes]
    assert len(indexes) == 5


def test_a_source_that_fails_mid_copy_is_named_and_the_target_is_untouched(warehouse: str, tmp_path: Path) -> None:
    before, indexes = fetch(warehouse, CHECKSUM), fetch(warehouse, INDEXES)
    failing = (  # division by zero at row 15,000: after many batches have been written
        "SELECT id, code, name, amount / (id - 15000) * (id - 15000) AS amount, updated_at "
        "FROM source_items ORDER BY id"
    )
    with pytest.raises(EtlError) as raised:
        reload(warehouse, tmp_path, pass_through(query=failing))
    assert "'src'" in str(raised.value) and "division by zero" in str(raised.value)
    assert fetch(warehouse, CHECKSUM) == before
    assert fetch(warehouse, INDEXES) == indexes


def test_a_target_that_fails_while_the_source_sends_stops_the_source_copy(warehouse: str, tmp_path: Path) -> None:
    """The target rejects a row half-way (a CHECK); the source's COPY is cancelled and drained, and its
    connection goes back to the pool usable (the load's error is the target's)."""
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("ALTER TABLE items ADD CONSTRAINT small_ids CHECK (id < 12000) NOT VALID")
    before = fetch(warehouse, CHECKSUM)
    source = open_connector("src", Secret(warehouse), tmp_path)
    target = open_connector("warehouse", Secret(warehouse), tmp_path)
    try:
        plan = LoadPlan(TableName("items"), Strategy.REPLACE, ("id",), None, WHOLE)
        with pytest.raises(EtlError, match="small_ids"), source.read(pass_through()) as stream:
            load(target, stream, plan, Progress("test", 3600))
        with source.read(pass_through()) as stream:  # the source connection still works
            with pytest.raises(EtlError, match="small_ids"):
                load(target, stream, plan, Progress("test", 3600))
    finally:
        source.close()
        target.close()
    assert fetch(warehouse, CHECKSUM) == before
    with psycopg.connect(warehouse) as conn:
        active = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY%%'"
        ).fetchone()
    assert active == (0,)


SLOW_INDEX = """
CREATE FUNCTION slow_code(text) RETURNS text IMMUTABLE LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(0.0005); RETURN $1; END $$;
CREATE INDEX items_slow ON items (slow_code(code));
"""
KILL_PROJECT = """
project: reload
connections:
  src: {}
tables:
  - target: items
    source: {connection: src, table: source_items}
    strategy: replace
"""


def test_a_kill_while_the_indexes_are_built_leaves_the_table_as_it_was(
    warehouse: str, etl_home: Path, tmp_path: Path
) -> None:
    """SIGKILL of the runner while PostgreSQL builds an index after the rows: the load's transaction
    never commits, so the table keeps its old rows and every index (the slow index takes ~10 s)."""
    from tests.conftest import REPO
    from tests.projects import write_project

    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute(SLOW_INDEX)
    before, indexes = fetch(warehouse, CHECKSUM), fetch(warehouse, INDEXES)
    write_project(etl_home, "reload", KILL_PROJECT)
    env = {**os.environ, "ETL_HOME": str(etl_home), "ETL_CONN_SRC": warehouse, "ETL_CONN_WAREHOUSE": warehouse}
    runner = subprocess.Popen(
        [sys.executable, str(REPO / "script_runner.py"), "--project", "reload", "--load-type", "F"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not building(warehouse):
            assert runner.poll() is None, "the run ended before its indexes were built"
            assert time.monotonic() < deadline, "no index build seen within 60 s"
            time.sleep(0.05)
        runner.send_signal(signal.SIGKILL)
        runner.wait(30)
        deadline = time.monotonic() + 60
        while building(warehouse):  # the server notices the dead client once the statement ends
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert fetch(warehouse, CHECKSUM) == before
    assert fetch(warehouse, INDEXES) == indexes


def building(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND state = 'active' AND (query LIKE 'CREATE %%INDEX%%' OR query LIKE 'ALTER TABLE%%ADD CONSTRAINT%%')"
        ).fetchone()
    return bool(row and row[0])
