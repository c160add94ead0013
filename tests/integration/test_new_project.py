"""``script_runner.py --new``: a project from a source's catalog, its launchers and its .env lines; the
refusals; then, end to end on MariaDB and PostgreSQL sources, the generated launcher's full load and an
incremental run that leaves the target tables equal to the source's, with its primary keys and types.

The load steps rely on target tables being created from the source (no DDL is generated)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from script_factory.config import load_project
from script_factory.settings import read_env_file
from tests.conftest import REPO, query, run_cli

SECRET = "pw-Zq81xv"  # PostgreSQL on 127.0.0.1 trusts local users, so any password connects


def sqlite_source(home: Path) -> str:
    """A SQLite source (relative to ETL_HOME) with orders (PK, updated_at), tags (PK, no cursor), log (no PK)."""
    import sqlite3

    with sqlite3.connect(home / "metadata" / "src.db") as conn:
        conn.executescript(
            """
            CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(12,2), MODIFIED_AT TIMESTAMP NOT NULL);
            CREATE TABLE tags (tag VARCHAR(20) PRIMARY KEY, since DATE);
            CREATE TABLE log (line TEXT, updated_at TEXT);
            """
        )
    return "sqlite:///metadata/src.db"


def error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_new_writes_a_valid_project_launchers_and_env(etl_home: Path) -> None:
    url = sqlite_source(etl_home)
    result = run_cli("--new", "shop", "--source", url, "--tables", "orders,tags,log")
    assert result.code == 0, result.stderr
    folder = etl_home / "customer_code" / "shop"
    project = load_project(folder)  # the project model accepts it as written
    tables = {str(t.target): t for t in project.tables}
    assert list(tables) == ["orders", "tags", "log"]
    assert (tables["orders"].strategy.value, tables["orders"].keys, tables["orders"].cursor) == (
        "merge",
        ("id",),
        "MODIFIED_AT",
    )
    assert (tables["tags"].strategy.value, tables["tags"].keys, tables["tags"].cursor) == ("merge", ("tag",), None)
    # a text column named updated_at is no cursor; no primary key: replace
    assert (tables["log"].strategy.value, tables["log"].keys, tables["log"].cursor) == ("replace", (), None)
    assert str(tables["orders"].source.table) == "orders" and tables["orders"].source.connection == "shop_source"
    assert project.warehouse == "warehouse"
    assert project.ddl == ()
    text = (folder / "project.yml").read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../project.schema.json\n")
    assert "No cursor: no timestamp column named updated_at" in text  # how to add one
    assert "has no primary key, so each run empties this table and reloads it" in text
    assert "sqlite:" not in text
    assert sorted(p.name for p in folder.iterdir()) == ["project.yml"]
    assert not (etl_home / "warehouse" / "shop").exists()  # no DDL: targets are created from the source
    # the URL is in the home's .env, readable by its owner only
    env = etl_home / ".env"
    assert read_env_file(env) == {"ETL_CONN_SHOP_SOURCE": url}
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    # launchers: this home is not the runner's folder, so they pin ETL_HOME and call the runner's bodies
    sh, bat = etl_home / "script_runner" / "shop.sh", etl_home / "script_runner" / "shop.bat"
    assert sorted(p.name for p in sh.parent.iterdir()) == ["shop.bat", "shop.sh"]
    assert os.access(sh, os.X_OK) and not os.access(bat, os.X_OK)
    assert bat.read_bytes().count(b"\r\n") == bat.read_bytes().count(b"\n")
    # what was written, and what to run next
    assert "  orders  <- shop_source: orders  (merge on id, cursor MODIFIED_AT)" in result.stdout
    assert "  log  <- shop_source: log  (replace (no primary key), no cursor (reads the whole table))" in result.stdout
    assert "  wrote customer_code/shop/project.yml" in result.stdout
    assert f"    ETL_CONN_SHOP_SOURCE={url}" in result.stdout
    assert "  script_runner/shop.sh F " in result.stdout
    # the new project lists and plans
    listing = run_cli("--list")
    assert listing.code == 0
    assert "  orders  <- shop_source: orders  (merge)" in listing.stdout.splitlines()
    plan = run_cli("--project", "shop", "--dry-run")
    assert plan.code == 0, plan.stderr
    assert "1. load:orders" in plan.stdout and "3. load:log" in plan.stdout
    assert "shop_source = sqlite:///metadata/src.db" in plan.stdout


def test_new_refuses_and_writes_nothing(etl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sqlite_source(etl_home)
    before = sorted(etl_home.rglob("*"))
    line = error_line(run_cli("--new", "shop", "--source", url, "--tables", "orders,ordrs"))
    assert line == (
        "script_runner.py: error: --tables: table ordrs not found in the source; "
        "tables in the source's default schema: log, orders, tags"
    )
    line = error_line(run_cli("--new", "shop", "--source", url, "--tables", "Orders"))
    assert line.endswith("table Orders not found in the source; names are case-sensitive: did you mean orders?")
    line = error_line(run_cli("--new", "shop", "--source", "nosuch://x", "--tables", "orders"))
    assert line.startswith("script_runner.py: error: --source: no connector for URL scheme 'nosuch'")
    line = error_line(run_cli("--new", "shop", "--source", url, "--tables", "orders", "--warehouse", "csv:///data"))
    assert "--warehouse: a CSV files connection cannot be a warehouse" in line or "cannot be a warehouse" in line
    # a variable of the same name in the environment (it would win over .env)
    monkeypatch.setenv("ETL_CONN_SHOP_SOURCE", "sqlite:///metadata/other.db")
    line = error_line(run_cli("--new", "shop", "--source", url, "--tables", "orders"))
    assert "ETL_CONN_SHOP_SOURCE is already set in the environment to another URL" in line
    monkeypatch.delenv("ETL_CONN_SHOP_SOURCE")
    assert sorted(etl_home.rglob("*")) == before  # nothing was written
    # .env holding the variable with another value
    env = etl_home / ".env"
    env.write_text("ETL_CONN_SHOP_SOURCE=postgresql://u:other-secret@db/x\n", encoding="utf-8")
    line = error_line(run_cli("--new", "shop", "--source", url, "--tables", "orders"))
    assert line == (
        f"script_runner.py: error: ETL_CONN_SHOP_SOURCE is already in {env} with another URL; remove that line, "
        "give the same URL, or choose another connection name with --connection NAME"
    )
    # ... or with the same value: kept as it is, nothing added
    env.write_text(f"ETL_CONN_SHOP_SOURCE={url}", encoding="utf-8")  # no final newline
    assert run_cli("--new", "shop", "--source", url, "--tables", "orders").code == 0
    assert env.read_text(encoding="utf-8") == f"ETL_CONN_SHOP_SOURCE={url}"
    # an existing project, or a launcher in the way
    line = error_line(run_cli("--new", "shop", "--source", url, "--tables", "orders"))
    assert line == (
        f"script_runner.py: error: --new shop: project 'shop' already exists ({etl_home / 'customer_code' / 'shop'}); "
        "choose another name"
    )
    (etl_home / "script_runner" / "shop2.bat").write_text("x", encoding="utf-8")
    line = error_line(run_cli("--new", "shop2", "--source", url, "--tables", "orders"))
    assert line.endswith(f"{etl_home / 'script_runner' / 'shop2.bat'} already exists; remove it or choose another name")
    assert not (etl_home / "customer_code" / "shop2").exists()


def test_a_failure_while_writing_leaves_nothing_behind(etl_home: Path) -> None:
    url = sqlite_source(etl_home)
    env = etl_home / ".env"
    env.write_text("ETL_LOG_LEVEL=INFO\n", encoding="utf-8")
    env.chmod(0o640)
    (etl_home / "script_runner").write_text("a file where the launchers' folder belongs", encoding="utf-8")
    line = error_line(run_cli("--new", "shop", "--source", url, "--tables", "orders"))
    assert line.startswith(f"script_runner.py: error: --new shop: cannot write {etl_home / 'script_runner'}")
    assert line.endswith("nothing was written (fix the folder's permissions or free space, then run again)")
    assert list((etl_home / "customer_code").iterdir()) == []
    assert env.read_text(encoding="utf-8") == "ETL_LOG_LEVEL=INFO\n"
    # when writing .env fails, the project and its launchers written before are removed again
    (etl_home / "script_runner").unlink()
    env.unlink()
    env.mkdir()  # a folder where .env belongs
    line = error_line(run_cli("--new", "shop", "--source", url, "--tables", "orders"))
    assert "cannot write" in line and "nothing was written" in line
    assert list((etl_home / "customer_code").iterdir()) == []
    assert list((etl_home / "script_runner").iterdir()) == []
    assert list(env.iterdir()) == []


def test_the_warehouse_is_shared_when_it_is_the_same_else_the_projects_own(
    etl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_source(etl_home)
    shared = f"postgresql://postgres:{SECRET}@127.0.0.1:5432/wh"
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", shared)
    assert run_cli("--new", "one", "--source", url, "--tables", "orders", "--warehouse", shared).code == 0
    assert load_project(etl_home / "customer_code" / "one").warehouse == "warehouse"
    own = f"postgresql://postgres:{SECRET}@127.0.0.1:5432/other"
    result = run_cli("--new", "two", "--source", url, "--tables", "orders", "--warehouse", own)
    assert result.code == 0, result.stderr
    assert load_project(etl_home / "customer_code" / "two").warehouse == "two_warehouse"
    assert read_env_file(etl_home / ".env")["ETL_CONN_TWO_WAREHOUSE"] == own
    assert SECRET not in result.stdout + result.stderr
    assert "    ETL_CONN_TWO_WAREHOUSE=postgresql://postgres:***@127.0.0.1:5432/other" in result.stdout
    assert SECRET not in (etl_home / "customer_code" / "two" / "project.yml").read_text(encoding="utf-8")


# -- end to end: MariaDB and PostgreSQL sources into a PostgreSQL warehouse -----------------------------------

MARIADB_DDL = [
    "CREATE TABLE orders (id INT PRIMARY KEY, amount DECIMAL(12,2), note VARCHAR(40), updated_at DATETIME NOT NULL)",
    "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(60) NOT NULL)",
    "CREATE TABLE events (msg TEXT, n INT)",
]
POSTGRES_DDL = [
    "CREATE SCHEMA shop",
    "CREATE TABLE shop.orders (id INT PRIMARY KEY, amount NUMERIC(12,2), note VARCHAR(40), "
    "updated_at TIMESTAMP NOT NULL)",
    "CREATE TABLE shop.customers (id BIGINT PRIMARY KEY, name VARCHAR(60) NOT NULL)",
    "CREATE TABLE shop.events (msg TEXT, n INT)",
]
# information_schema.columns of the created targets: data_type, numeric precision and scale
EXPECTED_TYPES = {
    "mariadb": {
        "orders": {
            "id": ("integer", 32, 0),
            "amount": ("numeric", 12, 2),
            "note": ("text", None, None),  # MySQL's character types map to text (README's type map)
            "updated_at": ("timestamp without time zone", None, None),
        },
        "customers": {"id": ("bigint", 64, 0), "name": ("text", None, None)},
        "events": {"msg": ("text", None, None), "n": ("integer", 32, 0)},
    },
    "postgresql": {
        "orders": {
            "id": ("integer", 32, 0),
            "amount": ("numeric", 12, 2),
            "note": ("character varying", None, None),
            "updated_at": ("timestamp without time zone", None, None),
        },
        "customers": {"id": ("bigint", 64, 0), "name": ("character varying", None, None)},
        "events": {"msg": ("text", None, None), "n": ("integer", 32, 0)},
    },
}


def checkout_home(home: Path) -> None:
    """Make ``home`` look like the runner's own folder (launchers beside their shared bodies, script_runner.py,
    requirements.txt, a .venv that is up to date), so the generated launchers are the plain wrappers and
    run as they do in a checkout. The .venv's python runs this test's interpreter (nothing is installed)."""
    (home / "script_runner").mkdir()
    for body in ("_launch.sh", "_args.sh", "_venv.sh", "_launch.bat", "_docker.sh", "_docker.bat"):
        shutil.copy2(REPO / "script_runner" / body, home / "script_runner" / body)
    (home / "script_runner.py").symlink_to(REPO / "script_runner.py")
    shutil.copy2(REPO / "requirements.txt", home / "requirements.txt")
    venv = home / ".venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    python.chmod(0o755)
    # the stamp _venv.sh compares (requirements.txt includes no other file)
    assert "-r " not in (home / "requirements.txt").read_text(encoding="utf-8")
    digest = hashlib.sha256((home / "requirements.txt").read_bytes()).hexdigest()
    (venv / ".requirements.txt.sha256").write_text(digest + "\n", encoding="utf-8")


def source_for(kind: str, request: pytest.FixtureRequest) -> tuple[str, str, Callable[[str], None]]:
    """(the source's URL for --source, its schema, a function running one statement on it)."""
    if kind == "mariadb":
        url = request.getfixturevalue("mysql_url")
        schema = url.rsplit("/", 1)[1]

        def run(sql: str) -> None:
            import pymysql

            conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=schema)
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                conn.commit()
            finally:
                conn.close()

        for ddl in MARIADB_DDL:
            run(ddl)
        return url, schema, run
    base = request.getfixturevalue("pg_url")
    url = base.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")

    def run_pg(sql: str) -> None:
        import psycopg

        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql)

    for ddl in POSTGRES_DDL:
        run_pg(ddl)
    return url, "shop", run_pg


def source_rows(kind: str, url: str, schema: str, table: str) -> list[tuple]:
    sa_url = (
        url.replace("mysql://", "mysql+pymysql://")
        if kind == "mariadb"
        else url.replace("postgresql://", "postgresql+psycopg://")
    )
    return sorted(query(sa_url, f"SELECT * FROM {schema}.{table}"), key=repr)


@pytest.mark.parametrize("kind", ["mariadb", "postgresql"])
def test_new_project_end_to_end(kind: str, etl_home: Path, pg_url: str, request: pytest.FixtureRequest) -> None:
    checkout_home(etl_home)
    url, schema, run_source = source_for(kind, request)
    run_source(
        f"INSERT INTO {schema}.orders VALUES (1, 10.50, 'first', '2026-01-01 08:00:00'), "
        "(2, 20.00, NULL, '2026-01-02 09:30:00'), (3, 0.01, 'third', '2026-01-03 10:00:00')"
    )
    run_source(f"INSERT INTO {schema}.customers VALUES (7, 'Ada'), (8, 'Grace')")
    run_source(f"INSERT INTO {schema}.events VALUES ('boot', 1), ('boot', 1), (NULL, NULL)")
    warehouse = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")
    tables = ",".join(f"{schema}.{t}" for t in ("orders", "customers", "events"))
    created = run_cli("--new", "shop_sync", "--source", url, "--tables", tables, "--warehouse", warehouse)
    assert created.code == 0, created.stderr
    assert SECRET not in created.stdout + created.stderr
    launchers = etl_home / "script_runner"
    for name in ("shop_sync.sh", "shop_sync.bat", "shop_sync_docker.sh", "shop_sync_docker.bat"):
        template = (REPO / "script_runner" / name.replace("shop_sync", "sales_demo")).read_bytes()
        assert (launchers / name).read_bytes() == template.replace(b"sales_demo", b"shop_sync"), name
    assert os.access(launchers / "shop_sync.sh", os.X_OK) and os.access(launchers / "shop_sync_docker.sh", os.X_OK)
    project_yml = (etl_home / "customer_code" / "shop_sync" / "project.yml").read_text(encoding="utf-8")
    assert SECRET not in project_yml and "127.0.0.1" not in project_yml
    project = load_project(etl_home / "customer_code" / "shop_sync")
    assert project.warehouse == "shop_sync_warehouse"
    assert [(t.strategy.value, t.keys, t.cursor) for t in project.tables] == [
        ("merge", ("id",), "updated_at"),
        ("merge", ("id",), None),
        ("replace", (), None),
    ]
    env = read_env_file(etl_home / ".env")
    assert env == {"ETL_CONN_SHOP_SYNC_SOURCE": url, "ETL_CONN_SHOP_SYNC_WAREHOUSE": warehouse}

    # the full load through the generated launcher, as cron would run it
    done = subprocess.run(
        [str(launchers / "shop_sync.sh"), "F"],
        env={**os.environ, "ETL_HOME": str(etl_home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr

    # the source changes: a new order, an updated one (its updated_at moves on), a new customer, other events
    run_source(f"INSERT INTO {schema}.orders VALUES (4, 44.40, 'fourth', '2026-01-04 11:00:00')")
    run_source(
        f"UPDATE {schema}.orders SET amount = 21.00, note = 'changed', updated_at = '2026-01-05 12:00:00' WHERE id = 2"
    )
    run_source(f"INSERT INTO {schema}.customers VALUES (9, 'Edsger')")
    run_source(f"UPDATE {schema}.customers SET name = 'Ada L.' WHERE id = 7")
    run_source(f"DELETE FROM {schema}.events WHERE n = 1")
    run_source(f"INSERT INTO {schema}.events VALUES ('restart', 2)")
    incremental = run_cli("--project", "shop_sync", "--load-type", "I")
    assert incremental.code == 0, incremental.stdout + incremental.stderr

    target = pg_url.replace("postgresql://", "postgresql+psycopg://")
    for table in ("orders", "customers", "events"):
        assert sorted(query(target, f"SELECT * FROM public.{table}"), key=repr) == source_rows(
            kind, url, schema, table
        ), table
        columns = query(
            target,
            "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = :t ORDER BY ordinal_position",
            t=table,
        )
        assert {c[0]: tuple(c[1:]) for c in columns} == EXPECTED_TYPES[kind][table], table
        primary_key = query(
            target,
            "SELECT k.column_name FROM information_schema.table_constraints c "
            "JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name "
            "AND k.table_schema = c.table_schema AND k.table_name = c.table_name "
            "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = 'public' AND c.table_name = :t "
            "ORDER BY k.ordinal_position",
            t=table,
        )
        assert [r[0] for r in primary_key] == ([] if table == "events" else ["id"]), table
    # the incremental run read only the changed orders (the two after the full load's watermark)
    loaded = query(
        target,
        "SELECT t.target_table, t.rows FROM etl_task_runs t JOIN etl_runs r ON r.run_id = t.run_id "
        "WHERE r.load_type = 'I' AND t.task_name = 'load:orders'",
    )
    assert loaded and loaded[0][1] == 2, loaded
