"""Transforms in flight, through the real script_runner.py: columns, dedupe, lookups, PII and a
script_worker.py function on SQLite, PostgreSQL and MariaDB; COPY pass-through kept for tables without
transforms; ETL_PII_KEY nowhere in the log, the audit rows or the outputs."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from decimal import Decimal
from pathlib import Path

import psycopg
import pymysql
import pytest

from script_factory.pii import decrypt
from tests.conftest import query, run_cli
from tests.projects import write_project
from utilities.secrets import Secret

KEY = "pii-test-key-0123456789-abcdefghijklmnop"

PROJECT = """
project: pii_demo
connections:
  src: {default: "sqlite:///metadata/src.db"}
ddl: [pii_demo/001_people.sql]
tables:
  - target: people
    source: {connection: src, table: people}
    strategy: merge
    keys: [person_id]
    cursor: updated_at
    drop: [internal]
    columns:
      id: {rename: person_id}
      name: {trim: true, null_if: ['', 'N/A']}
      email: {rename: email_hash, hash: true}
      phone: {mask: 4}
      ssn: {encrypt: true}
      amount: {cast: 'numeric(12,2)', default: 0}
    dedupe: {keys: [person_id], keep: latest_by_cursor}
    lookups:
      - {column: country, from: {file: lookups/countries.csv}, key: code, value: name, as: country_name}
    transform: shout
outputs:
  - {name: people, query: sql/people.sql}
"""
DDL = """
CREATE TABLE people (person_id BIGINT PRIMARY KEY, name VARCHAR(100), email_hash TEXT, phone TEXT, ssn TEXT,
    amount NUMERIC(12,2), country TEXT, country_name TEXT, updated_at TIMESTAMP NOT NULL);
"""
WORKER = """
from script_factory.transforms import Batch


def shout(batch: Batch) -> Batch:
    at = batch.columns.index("country_name")
    return Batch(batch.columns, [(*r[:at], r[at].upper() if r[at] else r[at], *r[at + 1:]) for r in batch.rows])
"""
SOURCE_ROWS = [  # id, name, email, phone, ssn, amount, country, internal, updated_at
    (1, " Ann (old) ", "ann@x.org", "0611111111", "111-11-1111", "1", "FR", "x", "2024-01-01 10:00:00"),
    (1, "  Ann  ", "ann@x.org", "0612345678", "123-45-6789", "12.345", "FR", "x", "2024-01-02 10:00:00"),
    (2, "N/A", None, "99", None, None, "ZZ", "x", "2024-01-01 11:00:00"),
]


def digest(text: str) -> str:
    return hmac.new(KEY.encode(), text.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def pii_home(etl_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    with sqlite3.connect(etl_home / "metadata" / "src.db") as conn:
        conn.execute(
            "CREATE TABLE people (id INTEGER, name TEXT, email TEXT, phone TEXT, ssn TEXT, amount TEXT, country TEXT, "
            "internal TEXT, updated_at TEXT)"
        )
        conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", SOURCE_ROWS)
    write_project(
        etl_home,
        "pii_demo",
        PROJECT,
        files={
            "script_worker.py": WORKER,
            "lookups/countries.csv": "code,name\nFR,France\nDE,Germany\n",
            "sql/people.sql": "SELECT * FROM people ORDER BY person_id",
        },
        ddl={"pii_demo/001_people.sql": DDL},
    )
    monkeypatch.setenv("ETL_PII_KEY", KEY)
    return etl_home


def test_every_transform_on_each_warehouse(pii_home: Path, warehouse: str) -> None:
    result = run_cli("--project", "pii_demo", "--load-type", "F")
    assert result.code == 0, result.stderr
    rows = query(
        warehouse,
        "SELECT person_id, name, email_hash, phone, ssn, amount, country, country_name FROM people ORDER BY 1",
    )
    assert [(r[0], r[1], r[2], r[3], Decimal(str(r[5])), r[6], r[7]) for r in rows] == [
        (1, "Ann", digest("ann@x.org"), "******5678", Decimal("12.35"), "FR", "FRANCE"),  # the latest row of id 1
        (2, None, None, "**", Decimal("0.00"), "ZZ", None),
    ]
    assert decrypt(rows[0][4], Secret(KEY)) == "123-45-6789" and rows[1][4] is None
    # an incremental run with an empty window: the function still names the columns, nothing breaks
    assert run_cli("--project", "pii_demo", "--load-type", "I").code == 0
    # the key is nowhere: log files, audit rows, outputs
    files = [*(pii_home / "metadata" / "logs").rglob("*"), *(pii_home / "metadata" / "output").rglob("*")]
    texts = [f.read_text(encoding="utf-8") for f in files if f.is_file()]
    assert any(".csv" in str(f) for f in files) and any(".log" in str(f) for f in files)
    audit = [query(warehouse, f"SELECT * FROM {t}") for t in ("etl_runs", "etl_task_runs", "etl_table_state")]
    assert KEY not in "".join(texts) + repr(audit)
    dry = run_cli("--project", "pii_demo", "--dry-run")
    assert dry.code == 0 and KEY not in dry.stdout + dry.stderr


def test_a_missing_key_stops_the_run_before_it_connects(pii_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETL_PII_KEY")
    result = run_cli("--project", "pii_demo", "--load-type", "F")
    assert result.code == 2
    assert "tables (people).columns: hash and encrypt need a key: set ETL_PII_KEY" in result.stderr


def test_a_tie_on_the_latest_cursor_fails_the_load(pii_home: Path) -> None:
    with sqlite3.connect(pii_home / "metadata" / "src.db") as conn:
        conn.execute("UPDATE people SET updated_at = '2024-01-02 10:00:00' WHERE id = 1")
    result = run_cli("--project", "pii_demo", "--load-type", "F")
    assert result.code == 1
    assert "same latest updated_at" in result.stderr + result.stdout


# -- PostgreSQL -> PostgreSQL: COPY pass-through stays for tables without transforms --------------

PG_PROJECT = """
project: pg_fast
connections:
  src: {}
tables:
  - {target: plain, source: {connection: src, table: events}, strategy: replace}
  - target: deduped
    source: {connection: src, table: events}
    strategy: append
    cursor: updated_at
    dedupe: {keys: [id]}
  - target: cleaned
    source: {connection: src, table: events}
    strategy: replace
    select: [id, label, updated_at]
    columns:
      label: {trim: true, rename: name, null_if: ['']}
"""


def test_pass_through_without_transforms_rows_with_them(
    etl_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id bigint, label text, updated_at timestamp)")
        conn.execute(
            "INSERT INTO events VALUES (1, ' a ', '2024-01-01'), (1, ' b ', '2024-01-03'), (2, '  ', '2024-01-02')"
        )
        for name in ("plain", "deduped"):
            conn.execute(f"CREATE TABLE {name} (id bigint, label text, updated_at timestamp)")
        conn.execute("CREATE TABLE cleaned (id bigint, name text, updated_at timestamp)")
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    monkeypatch.setenv("ETL_CONN_SRC", pg_url)
    write_project(etl_home, "pg_fast", PG_PROJECT)
    result = run_cli("--project", "pg_fast", "--load-type", "I")
    assert result.code == 0, result.stderr
    log = next((etl_home / "metadata" / "logs" / "pg_fast").glob("*.log")).read_text(encoding="utf-8")
    assert "replace into plain: 3 rows through COPY pass-through (binary)" in log
    assert "append into deduped: 3 rows through COPY pass-through (binary)" in log  # dedupe runs in the stage
    assert "replace into cleaned: 3 rows through rows" in log
    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    assert query(url, "SELECT id, label FROM deduped ORDER BY id") == [(1, " b "), (2, "  ")]
    assert query(url, "SELECT id, name FROM cleaned ORDER BY id, updated_at") == [(1, "a"), (1, "b"), (2, None)]


# -- MariaDB: as a source and as the target whose staging table dedupes ----------------------------

MARIA_PROJECT = """
project: maria_pii
connections:
  shop: {}
ddl: [maria_pii/001.sql]
tables:
  - target: dim_customers
    source: {connection: shop, table: customers}
    strategy: append
    cursor: changed_at
    columns:
      customer_id: {rename: id}
      email: {hash: true, trim: true}
      code: {cast: integer, null_if: ['-']}
    dedupe: {keys: [id]}
"""
MARIA_DDL = "CREATE TABLE dim_customers (id BIGINT, email TEXT, code INTEGER, changed_at TIMESTAMP(6) NULL);"


@pytest.mark.parametrize("target", ["mariadb", "postgresql"])
def test_mariadb_source_and_target(
    target: str, etl_home: Path, mysql_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    database = mysql_url.rsplit("/", 1)[1]
    with (
        pymysql.connect(host="127.0.0.1", user="root", database=database, autocommit=True) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(
            "CREATE TABLE customers (customer_id BIGINT, email VARCHAR(100), code VARCHAR(10), changed_at DATETIME(6))"
        )
        cur.executemany(
            "INSERT INTO customers VALUES (%s, %s, %s, %s)",
            [
                (7, " c@x.org ", "-", "2024-01-01 00:00:00"),
                (7, "c@x.org", "42", "2024-01-05 00:00:00"),
                (8, None, "8", None),
                (8, "d@x.org", "9", "2024-01-02 00:00:00"),
            ],
        )
    warehouse = mysql_url if target == "mariadb" else request.getfixturevalue("pg_url")
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", warehouse)
    monkeypatch.setenv("ETL_CONN_SHOP", mysql_url)
    monkeypatch.setenv("ETL_PII_KEY", KEY)
    write_project(etl_home, "maria_pii", MARIA_PROJECT, ddl={"maria_pii/001.sql": MARIA_DDL})
    result = run_cli("--project", "maria_pii", "--load-type", "I")
    assert result.code == 0, result.stderr
    url = warehouse.replace("mysql://", "mysql+pymysql://").replace("postgresql://", "postgresql+psycopg://")
    assert query(url, "SELECT id, email, code FROM dim_customers ORDER BY id") == [
        (7, digest("c@x.org"), 42),
        (8, digest("d@x.org"), 9),  # the NULL cursor is the earliest
    ]
