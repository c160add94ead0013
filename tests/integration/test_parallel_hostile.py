"""Hostile values through ``parallel: 4``: eight tables load at once into PostgreSQL, four from
PostgreSQL (binary COPY pass-through) and four from MariaDB (Arrow encoded as binary COPY), each in
its own connection and transaction, with the real script_runner.py. Every table holds exactly the
values inserted with bound parameters (checksum and NULL count per column), after a full load, after
a second full load (no duplicate) and after an incremental run; each table's log lines name it."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_cli
from tests.integration.test_hostile_values import PG_DDL, ROWS_, checksums, mariadb_hostile_tables
from tests.projects import write_project

PG_TABLES = [f"pg{i}" for i in range(4)]
MY_TABLES = [f"my{i}" for i in range(4)]
PROJECT = """
project: par_hostile
connections: {{pgsrc: {{}}, mysrc: {{}}}}
parallel: 4
defaults: {{strategy: merge, keys: [id], cursor: ts}}
tables:
{tables}
"""


@pytest.fixture
def sources(pg_url: str, mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The hostile rows in four PostgreSQL and four MariaDB source tables, the expected values and the
    targets in the PostgreSQL warehouse (the source's own database)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE expected {PG_DDL}")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO expected VALUES ({', '.join(['%s'] * 8)})", ROWS_)
        conn.execute("CREATE SCHEMA src")
        for name in PG_TABLES:
            conn.execute(f"CREATE TABLE src.{name} AS TABLE expected")
            conn.execute(f"ALTER TABLE src.{name} ADD PRIMARY KEY (id)")
        for name in PG_TABLES + MY_TABLES:
            conn.execute(f"CREATE TABLE {name} {PG_DDL}")
    mariadb_hostile_tables(mysql_url, *MY_TABLES)
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    monkeypatch.setenv("ETL_CONN_PGSRC", pg_url)
    monkeypatch.setenv("ETL_CONN_MYSRC", mysql_url)
    return pg_url


def _project(home: Path) -> None:
    entries = [f"  - {{target: {t}, source: {{connection: pgsrc, table: src.{t}}}}}" for t in PG_TABLES]
    entries += [f"  - {{target: {t}, source: {{connection: mysrc, table: {t}}}}}" for t in MY_TABLES]
    write_project(home, "par_hostile", PROJECT.format(tables="\n".join(entries)))


def _assert_every_table_exact(url: str) -> None:
    want = checksums(url, "expected")
    for table in PG_TABLES + MY_TABLES:
        assert checksums(url, table) == want, table


def test_hostile_values_arrive_exactly_in_eight_tables_loaded_four_at_a_time(sources: str, etl_home: Path) -> None:
    _project(etl_home)
    first = run_cli("--project", "par_hostile", "--load-type", "F")
    assert first.code == 0, first.stderr
    _assert_every_table_exact(sources)

    again = run_cli("--project", "par_hostile", "--load-type", "F")  # a second full load: no duplicate
    assert again.code == 0, again.stderr
    _assert_every_table_exact(sources)

    incremental = run_cli("--project", "par_hostile", "--load-type", "I")
    assert incremental.code == 0, incremental.stderr
    _assert_every_table_exact(sources)

    with psycopg.connect(sources) as conn:
        tasks = conn.execute(
            "SELECT task_name, status, start_time, end_time FROM etl_task_runs "
            "WHERE run_id = (SELECT min(run_id) FROM etl_runs) AND task_kind = 'load' ORDER BY start_time"
        ).fetchall()
    assert len(tasks) == 8 and {status for _, status, _, _ in tasks} == {"success"}, tasks
    # they ran at once: the fourth load started before the first one ended
    assert tasks[3][2] < min(end for _, _, _, end in tasks[:4]), tasks

    log = sorted((etl_home / "metadata" / "logs" / "par_hostile").glob("*.log"))[0].read_text(encoding="utf-8")
    for table in PG_TABLES + MY_TABLES:
        lines = [line for line in log.splitlines() if f"load:{table}:" in line or f"load {table} " in line]
        assert any("started" in line for line in lines), (table, lines)
        assert any("done in" in line for line in lines), (table, lines)
    assert "COPY pass-through (binary)" in log and "Arrow -> COPY (binary)" in log
