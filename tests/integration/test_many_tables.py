"""Many tables in one project, end to end: defaults:, pattern entries expanded from a real PostgreSQL and
MariaDB catalog (schema-qualified sources, primary keys as merge keys), --dry-run, --tables and
continue_on_error. The warehouse is the embedded SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest

from tests.conftest import run_cli
from tests.projects import write_project

ROWS = [(1, "one", "2024-01-01 10:00:00"), (2, "two", "2024-01-02 10:00:00")]
TARGET_DDL = "CREATE TABLE {name} (id BIGINT, label VARCHAR(50), updated_at TIMESTAMP, PRIMARY KEY (id));\n"


def warehouse(home: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(home / "metadata" / "warehouse.db") as conn:
        return conn.execute(sql).fetchall()


def ddl(project: str, *targets: str) -> dict[str, str]:
    return {f"{project}/001_targets.sql": "".join(TARGET_DDL.format(name=t) for t in targets)}


# -- PostgreSQL: schema erp ---------------------------------------------------------------------------------


@pytest.fixture
def erp_pg(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Schema erp: orders, order_lines, orders_tmp, customers (with primary keys) and notes (without one)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA erp")
        for name in ("orders", "order_lines", "orders_tmp", "customers"):
            conn.execute(f"CREATE TABLE erp.{name} (id BIGINT PRIMARY KEY, label TEXT, updated_at TIMESTAMP)")
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO erp.{name} VALUES (%s, %s, %s)", ROWS)
        conn.execute("CREATE TABLE erp.notes (id BIGINT, label TEXT, updated_at TIMESTAMP)")
    monkeypatch.setenv("ETL_CONN_ERP", pg_url)
    return pg_url


PATTERN_PROJECT = """
project: many
connections: {{erp: {{}}}}
ddl: [many/001_targets.sql]
defaults: {{strategy: merge, cursor: updated_at, source: {{connection: erp}}}}
tables:
  - {{target: erp_customers, source: {{table: erp.customers}}, strategy: replace, cursor: null}}
  - source: {{tables: {{schema: erp, include: [{include}], exclude: ['*_tmp']}}}}
    target_prefix: erp_
"""


def test_a_pattern_loads_every_matching_table_with_its_primary_key(erp_pg: str, etl_home: Path) -> None:
    targets = ("erp_customers", "erp_orders", "erp_order_lines")
    write_project(etl_home, "many", PATTERN_PROJECT.format(include="'ord*'"), ddl=ddl("many", *targets))

    plan = run_cli("--project", "many", "--dry-run")
    assert plan.code == 0, plan.stderr
    loads = [line.split()[1] for line in plan.stdout.splitlines() if "[load]" in line]
    assert loads == ["load:erp_customers", "load:erp_order_lines", "load:erp_orders"]  # the catalog's order
    assert "tables (pattern erp: schema erp, include ord*, exclude *_tmp): expanded" in plan.stdout
    assert "keys=('id',)" in plan.stdout and "orders_tmp" not in plan.stdout

    result = run_cli("--project", "many", "--load-type", "F")
    assert result.code == 0, result.stdout + result.stderr
    for target in targets:
        assert warehouse(etl_home, f"SELECT id, label FROM {target} ORDER BY id") == [(1, "one"), (2, "two")]
    assert warehouse(etl_home, "SELECT name FROM sqlite_master WHERE name LIKE '%tmp%'") == []


def test_a_merge_pattern_matching_a_table_without_primary_key_is_refused(erp_pg: str, etl_home: Path) -> None:
    write_project(etl_home, "many", PATTERN_PROJECT.format(include="'ord*', notes"), ddl=ddl("many", "erp_customers"))
    result = run_cli("--project", "many", "--dry-run")
    assert result.code == 2
    assert "merge needs keys, and erp.notes has no primary key in the source" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_pattern_matching_nothing_names_the_schema_and_the_patterns(erp_pg: str, etl_home: Path) -> None:
    write_project(etl_home, "many", PATTERN_PROJECT.format(include="'invoice*'"), ddl=ddl("many", "erp_customers"))
    result = run_cli("--project", "many", "--load-type", "F")
    assert result.code == 2
    assert "no table of connection 'erp' matches schema erp, include invoice*, exclude *_tmp" in result.stderr
    assert not (etl_home / "metadata" / "warehouse.db").exists()


def test_an_unreachable_pattern_source_is_a_failed_connection(etl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_CONN_ERP", "postgresql://postgres@127.0.0.1:1/nowhere")
    write_project(etl_home, "many", PATTERN_PROJECT.format(include="'ord*'"), ddl=ddl("many", "erp_customers"))
    result = run_cli("--project", "many", "--load-type", "F")
    assert result.code == 1
    assert "PostgreSQL connection 'erp'" in result.stderr and "list the source's tables failed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (etl_home / "metadata" / "warehouse.db").exists()
    check = run_cli("--project", "many", "--check")  # --check still reports each connection
    assert check.code == 2 and "FAILED  erp" in check.stdout


# -- MariaDB: a "schema" is a database ----------------------------------------------------------------------


@pytest.fixture
def erp_maria(mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A second database next to the connection's own, holding orders, order_lines and orders_tmp."""
    schema = mysql_url.rsplit("/", 1)[1] + "_erp"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{schema}`")
            for name in ("orders", "order_lines", "orders_tmp"):
                cur.execute(
                    f"CREATE TABLE `{schema}`.{name} (id BIGINT, line INT, label VARCHAR(50), updated_at DATETIME, "
                    "PRIMARY KEY (id, line))"
                )
                cur.executemany(
                    f"INSERT INTO `{schema}`.{name} VALUES (%s, 1, %s, %s)",
                    ROWS,
                )
        monkeypatch.setenv("ETL_CONN_ERP", mysql_url)
        yield schema
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")
        conn.close()


def test_mariadb_pattern_and_schema_qualified_table(erp_maria: str, etl_home: Path) -> None:
    yml = f"""
    project: many
    connections: {{erp: {{}}}}
    ddl: [many/001_targets.sql]
    defaults: {{strategy: merge, cursor: updated_at, source: {{connection: erp}}}}
    tables:
      - {{target: tmp_copy, source: {{table: {erp_maria}.orders_tmp}}, keys: [id, line]}}
      - source: {{tables: {{schema: {erp_maria}, include: ['ORD*'], exclude: ['*_TMP']}}}}
    """
    targets = ("tmp_copy", "orders", "order_lines")
    ddl_text = "".join(
        f"CREATE TABLE {t} (id BIGINT, line INT, label VARCHAR(50), updated_at TIMESTAMP, PRIMARY KEY (id, line));\n"
        for t in targets
    )
    write_project(etl_home, "many", yml, ddl={"many/001_targets.sql": ddl_text})
    plan = run_cli("--project", "many", "--dry-run")
    assert plan.code == 0, plan.stderr
    assert "keys=('id', 'line')" in plan.stdout and "load:orders_tmp" not in plan.stdout
    result = run_cli("--project", "many", "--load-type", "F")
    assert result.code == 0, result.stdout + result.stderr
    for target in targets:
        assert warehouse(etl_home, f"SELECT id, label FROM {target} ORDER BY id") == [(1, "one"), (2, "two")]


# -- --tables and continue_on_error (SQLite source) ---------------------------------------------------------


def sqlite_source(home: Path, *names: str) -> None:
    with sqlite3.connect(home / "metadata" / "src.db") as conn:
        for name in names:
            conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, label TEXT, updated_at TEXT)")
            conn.executemany(f"INSERT INTO {name} VALUES (?, ?, ?)", ROWS)


THREE_TABLES = """
project: three
connections:
  src: {{default: "sqlite:///metadata/src.db"}}
ddl: [three/001_targets.sql]
{extra}
defaults: {{strategy: merge, keys: [id], cursor: updated_at, source: {{connection: src}}}}
tables:
  - {{target: a, source: {{table: a}}}}
  - {{target: b, source: {{table: {b_source}}}}}
  - {{target: c, source: {{table: c}}}}
checks:
  - {{kind: row_count, table: a, min: 1}}
  - {{kind: row_count, table: b, min: 1000}}
  - {{kind: row_count, table: c, min: 1, severity: warn}}
  - {{kind: custom_sql, file: sql/none.sql, name: nothing}}
outputs:
  - {{name: everything, query: sql/none.sql}}
"""


def three_tables(home: Path, b_source: str = "b", extra: str = "") -> None:
    sqlite_source(home, "a", "b", "c")
    write_project(
        home,
        "three",
        THREE_TABLES.format(b_source=b_source, extra=extra),
        files={"sql/none.sql": "SELECT 1 AS one WHERE 1 = 0"},
        ddl=ddl("three", "a", "b", "c"),
    )


def test_tables_runs_only_those_tables_and_their_checks(etl_home: Path) -> None:
    three_tables(etl_home)
    result = run_cli("--project", "three", "--load-type", "F", "--tables", "a, c")
    assert result.code == 0, result.stdout + result.stderr  # b's failing row_count is not run
    tasks = warehouse(etl_home, "SELECT task_name, status FROM etl_task_runs ORDER BY task_run_id")
    assert tasks == [("warehouse_ddl", "success"), ("load:a", "success"), ("load:c", "success")]
    checks = warehouse(etl_home, "SELECT check_name FROM etl_dq_results ORDER BY check_name")
    assert checks == [("row_count_a",), ("row_count_c",)]
    assert warehouse(etl_home, "SELECT count(*) FROM b") == [(0,)]
    assert warehouse(etl_home, "SELECT target_table FROM etl_runs") == [("a, c",)]
    log = next((etl_home / "metadata" / "logs" / "three").glob("*.log")).read_text(encoding="utf-8")
    assert "--tables a, c: left out output:everything" in log


def test_tables_naming_an_unknown_table_lists_the_known_ones(etl_home: Path) -> None:
    three_tables(etl_home)
    result = run_cli("--project", "three", "--tables", "a,zz")
    assert result.code == 2
    assert result.stderr.strip() == "script_runner.py: error: project three: no table zz (its tables: a, b, c)"
    assert not (etl_home / "metadata" / "warehouse.db").exists()
    empty = run_cli("--project", "three", "--tables", " , ")
    assert empty.code == 2 and "names no table" in empty.stderr


def test_continue_on_error_loads_the_other_tables_and_names_the_failed_one(etl_home: Path) -> None:
    three_tables(etl_home, b_source="missing_table", extra="continue_on_error: true")
    result = run_cli("--project", "three", "--load-type", "F")
    assert result.code == 1, result.stdout + result.stderr
    assert "1 failed (load:b)" in result.stdout and "missing_table" in result.stdout
    assert warehouse(etl_home, "SELECT count(*) FROM a") == [(2,)]
    assert warehouse(etl_home, "SELECT count(*) FROM c") == [(2,)]
    tasks = warehouse(etl_home, "SELECT task_name, status, error_message, message FROM etl_task_runs ORDER BY 1")
    by_name = {name: (status, error, message) for name, status, error, message in tasks}
    assert by_name["load:a"][0] == "success" and by_name["load:c"][0] == "success"
    assert by_name["load:b"][0] == "failed" and "missing_table" in by_name["load:b"][1]
    assert by_name["quality_checks"][0] == "skipped" and "a table load failed (load:b)" in by_name["quality_checks"][2]
    assert by_name["output:everything"][0] == "skipped"
    (run,) = warehouse(etl_home, "SELECT status, error_message, number_of_records FROM etl_runs")
    assert run[0] == "failed" and run[1].startswith("SQLite connection 'src'") and run[2] == 4
    state = warehouse(etl_home, "SELECT target_table FROM etl_table_state ORDER BY 1")
    assert state == [("a",), ("c",)]  # b's watermark did not move


def test_continue_on_error_names_every_failed_table(etl_home: Path) -> None:
    three_tables(etl_home, b_source="missing_table", extra="continue_on_error: true")
    with sqlite3.connect(etl_home / "metadata" / "src.db") as conn:
        conn.execute("DROP TABLE c")
    result = run_cli("--project", "three", "--load-type", "F")
    assert result.code == 1
    assert "2 failed (load:b, load:c)" in result.stdout
    (error,) = warehouse(etl_home, "SELECT error_message FROM etl_runs")[0]
    assert error.startswith("2 tasks failed: load:b: ") and "; load:c: " in error


def test_without_continue_on_error_the_first_failure_stops_the_run(etl_home: Path) -> None:
    three_tables(etl_home, b_source="missing_table")
    result = run_cli("--project", "three", "--load-type", "F")
    assert result.code == 1
    tasks = warehouse(etl_home, "SELECT task_name, status FROM etl_task_runs ORDER BY task_run_id")
    assert tasks == [("warehouse_ddl", "success"), ("load:a", "success"), ("load:b", "failed")]


def test_verify_compares_only_the_tables_asked_for(etl_home: Path) -> None:
    three_tables(etl_home)
    assert run_cli("--project", "three", "--load-type", "F", "--tables", "a,c").code == 0
    result = run_cli("--project", "three", "--verify", "--tables", "c")
    assert result.code == 0, result.stdout + result.stderr
    compared = [line.split(":")[0] for line in result.stdout.splitlines() if line.startswith(("a:", "b:", "c:"))]
    assert compared == ["c"] and "every compared day agrees (1 table(s))" in result.stdout
