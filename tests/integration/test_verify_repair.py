"""``--verify`` and ``--verify --repair`` through the command line, on real engines (issue 9, section 6):
the days where a target drifted from its source are found exactly (day D is ``D 00:00 < cursor <=
D+1 00:00``), repaired by one run each (``etl_runs.purpose = 'repair'``), and nothing else is touched."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pymysql
import pytest

from tests.conftest import query, run_cli
from tests.projects import items_project, sqlite_items, write_project

BASE = datetime(2024, 1, 1)


def source_rows() -> list[tuple]:
    """40 items every 3 hours from 2024-01-01 03:00 to 2024-01-06 00:00, 8 a day (id 8 is 2024-01-02
    00:00:00, which belongs to day 2024-01-01; id 16 is 2024-01-03 00:00:00, day 2024-01-02)."""
    return [
        (i, f"item {i}", f"{i}.50", (BASE + timedelta(hours=3 * i)).strftime("%Y-%m-%d %H:%M:%S")) for i in range(1, 41)
    ]


def day_lines(output: str) -> list[str]:
    """The report's lines for days that differ: '<table>  <YYYY-MM-DD>  source ...'."""
    return [line for line in output.splitlines() if line.startswith("items  2")]


def physical_rows(url: str) -> dict[int, tuple]:
    """Each target row with its physical address (SQLite rowid, PostgreSQL ctid): a row deleted and
    inserted again, or updated, gets a new one."""
    address = "rowid" if url.startswith("sqlite") else "ctid::text"
    return {r[0]: r[1:] for r in query(url, f"SELECT id, {address}, name, amount, updated_at FROM items")}


def as_text(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (float, Decimal)):
        return f"{Decimal(str(value)):.2f}"
    return str(value)


def table_content(url: str) -> list[tuple[str, ...]]:
    return [
        tuple(as_text(v) for v in row)
        for row in query(url, "SELECT id, name, amount, updated_at FROM items ORDER BY id")
    ]


def test_verify_finds_the_drifted_days_and_repair_reloads_exactly_them(etl_home: Path, warehouse: str) -> None:
    items_project(etl_home)
    source = etl_home / "metadata" / "src.db"
    sqlite_items(source, source_rows())
    assert run_cli("--project", "items_demo").code == 0
    clean = run_cli("--project", "items_demo", "--verify")
    assert clean.code == 0, clean.stdout + clean.stderr
    assert "verify items_demo: every compared day agrees (1 table(s))" in clean.stdout
    assert (
        "items: 5 day(s) compared up to its watermark 2024-01-06 00:00:00 (source 40 rows, target 40)" in clean.stdout
    )

    # Drift, by hand: on 2024-01-02 the midnight row of 2024-01-03 goes missing; on 2024-01-03 a
    # cursor moves within its day; on 2024-01-04 a stray row appears; and the source gains a late row
    # on 2024-01-01, which the incremental window (after the watermark) never reads.
    executes = [
        "DELETE FROM items WHERE id = 16",
        "UPDATE items SET updated_at = '2024-01-03 07:00:00' WHERE id = 18",
        "INSERT INTO items VALUES (1000, 'stray', 1.00, '2024-01-04 12:00:00')",
    ]
    for sql in executes:
        query_write(warehouse, sql)
    sqlite_items(source, [(2000, "late", "7.25", "2024-01-01 05:30:00")])
    assert run_cli("--project", "items_demo").code == 0
    assert query(warehouse, "SELECT count(*) FROM items WHERE id = 2000") == [(0,)]
    before = physical_rows(warehouse)

    found = run_cli("--project", "items_demo", "--verify")

    assert found.code == 1, found.stdout + found.stderr
    assert day_lines(found.stdout) == [
        "items  2024-01-01  source 9 / target 8  checksums differ",
        "items  2024-01-02  source 8 / target 7  checksums differ",
        "items  2024-01-03  source 8 / target 8  checksums differ",
        "items  2024-01-04  source 8 / target 9  checksums differ",
    ]
    assert "verify items_demo: 4 day(s) differ in 1 of 1 table(s)" in found.stdout
    assert physical_rows(warehouse) == before  # --verify writes nothing

    repaired = run_cli("--project", "items_demo", "--verify", "--repair")

    assert repaired.code == 0, repaired.stdout + repaired.stderr
    for day in ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"):
        assert f"items  {day}  now agrees" in repaired.stdout
    assert "verify items_demo after repair: every compared day agrees" in repaired.stdout
    with sqlite3.connect(source) as conn:
        expected = [tuple(as_text(v) for v in row) for row in conn.execute("SELECT * FROM items ORDER BY id")]
    assert table_content(warehouse) == expected  # the table equals its source, count and content
    after = physical_rows(warehouse)
    untouched = [i for i, row in before.items() if as_text(row[3]) > "2024-01-05 00:00:00"]  # day 2024-01-05
    assert sorted(untouched) == list(range(33, 41))
    assert {i: after[i] for i in untouched} == {i: before[i] for i in untouched}  # not rewritten: same address
    runs = query(
        warehouse,
        "SELECT start_load_date, end_load_date, status, target_table, load_type FROM etl_runs "
        "WHERE purpose = 'repair' ORDER BY run_id",
    )
    assert runs == [
        (f"2024-01-0{d} 00:00:00", f"2024-01-0{d + 1} 00:00:00", "success", "items", "I") for d in (1, 2, 3, 4)
    ]
    assert query(warehouse, "SELECT count(*) FROM etl_runs WHERE purpose IS NULL") == [(2,)]
    again = run_cli("--project", "items_demo", "--verify")
    assert again.code == 0, again.stdout
    assert day_lines(again.stdout) == []


def query_write(url: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def test_a_key_moved_to_another_day_is_repaired_on_a_second_pass(etl_home: Path, warehouse: str) -> None:
    """The row moved from day 2024-01-02 to 2024-01-05 keeps its key there: repairing 2024-01-02 first
    meets that key (primary key), repairing 2024-01-05 frees it, and the day is tried again."""
    items_project(etl_home)
    sqlite_items(etl_home / "metadata" / "src.db", source_rows())
    assert run_cli("--project", "items_demo").code == 0
    query_write(warehouse, "UPDATE items SET updated_at = '2024-01-05 10:00:00' WHERE id = 10")

    found = run_cli("--project", "items_demo", "--verify")
    assert found.code == 1
    assert day_lines(found.stdout) == [
        "items  2024-01-02  source 8 / target 7  checksums differ",
        "items  2024-01-05  source 8 / target 9  checksums differ",
    ]
    repaired = run_cli("--project", "items_demo", "--verify", "--repair")

    assert repaired.code == 0, repaired.stdout + repaired.stderr
    assert "repair items: trying the 1 failed day(s) again" in repaired.stdout
    assert query(warehouse, "SELECT updated_at FROM items WHERE id = 10") in (
        [("2024-01-02 06:00:00",)],
        [(datetime(2024, 1, 2, 6),)],
    )
    statuses = query(warehouse, "SELECT start_load_date, status FROM etl_runs WHERE purpose = 'repair' ORDER BY run_id")
    assert statuses == [
        ("2024-01-02 00:00:00", "failed"),
        ("2024-01-05 00:00:00", "success"),
        ("2024-01-02 00:00:00", "success"),
    ]


PG_PROJECT = """
project: pg_events
connections:
  erp: {}
ddl: [pg_events/001_events.sql]
tables:
  - target: events
    source: {connection: erp, query: sql/events.sql}
    strategy: delete_insert
    keys: [region, seq]
    cursor: changed_at
  - {target: regions, source: {connection: erp, table: regions}, strategy: replace}
"""
PG_DDL = """
CREATE TABLE events (region TEXT, seq NUMERIC(12,2), note TEXT, changed_at TIMESTAMP);
CREATE TABLE regions (region TEXT);
"""


def test_postgresql_source_into_sqlite_with_an_aware_cursor(
    etl_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """timestamptz (aware) and numeric keys read from PostgreSQL, text in SQLite: compared exactly; a
    day with a lost row is repaired in UTC; a table without a cursor is skipped with a note."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (region TEXT, seq NUMERIC(12,2), note TEXT, changed_at TIMESTAMPTZ)")
        conn.execute("CREATE TABLE regions (region TEXT)")
        conn.execute("INSERT INTO regions VALUES ('north')")
        start = datetime(2024, 3, 1, tzinfo=UTC)
        for i in range(1, 25):
            moment = start + timedelta(hours=5 * i)
            conn.execute("INSERT INTO events VALUES (%s, %s, %s, %s)", ("north", Decimal(f"{i}.50"), f"e{i}", moment))
    monkeypatch.setenv("ETL_CONN_ERP", pg_url)
    write_project(
        etl_home,
        "pg_events",
        PG_PROJECT,
        files={"sql/events.sql": "SELECT region, seq, note, changed_at FROM events -- all of them"},
        ddl={"pg_events/001_events.sql": PG_DDL},
    )
    assert run_cli("--project", "pg_events").code == 0
    clean = run_cli("--project", "pg_events", "--verify")
    assert clean.code == 0, clean.stdout + clean.stderr
    assert "regions: skipped (no cursor" in clean.stdout
    warehouse = f"sqlite:///{etl_home / 'metadata' / 'warehouse.db'}"
    query_write(warehouse, "DELETE FROM events WHERE note = 'e10'")  # 2024-03-03 02:00 UTC

    found = run_cli("--project", "pg_events", "--verify")
    assert found.code == 1
    assert [line for line in found.stdout.splitlines() if line.startswith("events  2")] == [
        "events  2024-03-03  source 5 / target 4  checksums differ"
    ]
    repaired = run_cli("--project", "pg_events", "--verify", "--repair")
    assert repaired.code == 0, repaired.stdout + repaired.stderr
    assert query(warehouse, "SELECT count(*) FROM events") == [(24,)]
    assert query(warehouse, "SELECT start_load_date FROM etl_runs WHERE purpose = 'repair'") == [
        ("2024-03-03 00:00:00+00:00",)
    ]
    assert run_cli("--project", "pg_events", "--verify").code == 0


MARIA_PROJECT = """
project: maria_verify
connections:
  shop: {}
ddl: [maria_verify/001_lines.sql]
tables:
  - target: order_lines
    source: {connection: shop, table: order_lines}
    strategy: merge
    keys: [order_id, price]
    cursor: updated_at
"""
MARIA_DDL = (
    "CREATE TABLE order_lines (order_id BIGINT, price NUMERIC(14,4), updated_at TIMESTAMP(6), "
    "PRIMARY KEY (order_id, price));"
)


def test_mariadb_decimal_keys_and_microseconds_compare_exactly(
    etl_home: Path, mysql_url: str, warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DECIMAL keys (Decimal in MariaDB, Decimal or float elsewhere) and DATETIME(6) cursors, a row at
    exactly midnight: a clean load verifies with exit 0, and a changed microsecond is found."""
    rows = [
        (1, Decimal("12.3456"), datetime(2024, 1, 1, 8, 0, 0, 123456)),
        (2, Decimal("-0.0001"), datetime(2024, 1, 2, 0, 0, 0)),
        (3, Decimal("10.0000"), datetime(2024, 1, 2, 10, 0, 0, 1)),
    ]
    database = mysql_url.rsplit("/", 1)[1]
    with pymysql.connect(host="127.0.0.1", user="root", password="", database=database, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE order_lines (order_id BIGINT, price DECIMAL(14,4), updated_at DATETIME(6))")
            cur.executemany("INSERT INTO order_lines VALUES (%s, %s, %s)", rows)
    monkeypatch.setenv("ETL_CONN_SHOP", mysql_url)
    write_project(etl_home, "maria_verify", MARIA_PROJECT, ddl={"maria_verify/001_lines.sql": MARIA_DDL})
    assert run_cli("--project", "maria_verify").code == 0

    clean = run_cli("--project", "maria_verify", "--verify")
    assert clean.code == 0, clean.stdout + clean.stderr
    assert "order_lines: 2 day(s) compared" in clean.stdout  # the midnight row counts for 2024-01-01
    query_write(warehouse, "UPDATE order_lines SET updated_at = '2024-01-02 10:00:00.000002' WHERE order_id = 3")
    found = run_cli("--project", "maria_verify", "--verify", "--start-date", "2024-01-01", "--end-date", "2024-01-03")
    assert found.code == 1
    assert "order_lines  2024-01-02  source 1 / target 1  checksums differ" in found.stdout


def test_bad_verify_input_is_one_line_and_exit_2(etl_home: Path) -> None:
    items_project(etl_home)
    for args, expected in (
        (("--project", "items_demo", "--repair"), "--repair reloads the days --verify finds"),
        (("--project", "nope", "--verify"), "unknown project 'nope'"),
        (("--project", "items_demo", "--verify", "--dry-run"), "--verify cannot be combined with --dry-run"),
    ):
        result = run_cli(*args)
        assert result.code == 2, result.stderr
        assert result.stderr.startswith(f"script_runner.py: error: {expected}"), result.stderr
        assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert not (etl_home / "metadata" / "warehouse.db").exists()  # nothing connected


def test_verify_while_a_run_holds_the_lock_is_exit_3(etl_home: Path) -> None:
    """A verify racing a load would report drift that is not there: it waits for no one, exit 3."""
    from script_factory.lock import ProjectLock

    items_project(etl_home)
    sqlite_items(etl_home / "metadata" / "src.db", source_rows())
    with ProjectLock(etl_home / "metadata" / "locks", "items_demo"):
        result = run_cli("--project", "items_demo", "--verify")
    assert result.code == 3
    assert "project items_demo is already running" in result.stderr


def test_a_day_the_repair_cannot_fix_still_differs_and_exits_1(etl_home: Path) -> None:
    """The late row breaks a gate of the table (name NOT NULL): its repair run fails (exit 4, rolled
    back), and the day is reported as still differing."""
    items_project(etl_home, extra="checks:\n  - {kind: not_null, table: items, columns: [name]}\n")
    source = etl_home / "metadata" / "src.db"
    sqlite_items(source, source_rows())
    assert run_cli("--project", "items_demo").code == 0
    sqlite_items(source, [(2000, None, "7.25", "2024-01-02 05:30:00")])

    result = run_cli("--project", "items_demo", "--verify", "--repair")

    assert result.code == 1, result.stdout + result.stderr
    assert "items  2024-01-02  source 9 / target 8  checksums differ  STILL DIFFERS" in result.stdout
    assert "verify items_demo after repair: 1 day(s) differ in 1 table(s)" in result.stdout
    warehouse = f"sqlite:///{etl_home / 'metadata' / 'warehouse.db'}"
    assert query(warehouse, "SELECT status FROM etl_runs WHERE purpose = 'repair'") == [("failed",)]
    assert query(warehouse, "SELECT count(*) FROM items") == [(40,)]
