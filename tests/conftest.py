"""Shared fixtures: a clean environment for every test, real PostgreSQL and MariaDB databases,
a fakesnow server for Snowflake, a throw-away ETL home, and a helper that runs the command line in-process."""

from __future__ import annotations

import io
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get("TEST_MYSQL_ADMIN_URL", "mysql://root@127.0.0.1:3306/test")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's own ETL settings."""
    for key in list(os.environ):
        if key.startswith("ETL_"):
            monkeypatch.delenv(key)


@pytest.fixture
def etl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ETL home (customer_code/, warehouse/, aggregations/, metadata/) set as ETL_HOME."""
    home = tmp_path / "home"
    for folder in ("customer_code", "warehouse", "aggregations", "metadata"):
        (home / folder).mkdir(parents=True)
    monkeypatch.setenv("ETL_HOME", str(home))
    return home


@pytest.fixture
def demo_home(etl_home: Path) -> Path:
    """An ETL home holding a copy of the sales_demo project, its DDL and its aggregation."""
    shutil.copytree(REPO / "customer_code" / "sales_demo", etl_home / "customer_code" / "sales_demo")
    shutil.copytree(REPO / "warehouse" / "sales_demo", etl_home / "warehouse" / "sales_demo")
    shutil.copytree(REPO / "aggregations" / "sales_demo", etl_home / "aggregations" / "sales_demo")
    return etl_home


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """``script_runner.py ARGS`` in this process (the environment is the test's)."""
    import script_runner

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = script_runner.main(list(args))
    return CliResult(int(code), out.getvalue(), err.getvalue())


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new PostgreSQL database on the real server, dropped afterwards."""
    import psycopg

    name = _unique("etl_test")
    admin = PG_ADMIN_URL.replace("postgresql://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A new MariaDB database on the real server, dropped afterwards."""
    import pymysql

    name = _unique("etl_test")
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield f"mysql://root@127.0.0.1:3306/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[dict]:
    """fakesnow's HTTP server on 127.0.0.1: Snowflake's wire protocol over DuckDB, so the real
    snowflake-connector-python talks to it (it accepts any user and password)."""
    import fakesnow

    logging.getLogger("fakesnow.server").setLevel(logging.WARNING)
    with fakesnow.server() as connect_kwargs:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
        yield connect_kwargs


@pytest.fixture
def snowflake_url(fakesnow_server: dict) -> str:
    """A new database (schema PUBLIC) on the fakesnow server, as an ``ETL_CONN_<NAME>`` URL."""
    database = _unique("etl_test").upper()
    port = fakesnow_server["port"]
    query = f"host=127.0.0.1&port={port}&protocol=http&network_timeout=5"
    return f"snowflake://etl_test:any-password@fakesnow/{database}/PUBLIC?{query}"
