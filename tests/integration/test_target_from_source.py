"""Targets created from the source and evolved with it, through the real command on real engines.

The hostile values (tests/integration/test_hostile_values.py) arrive exactly in a table the load
created itself, from SQLite, PostgreSQL and MariaDB; the created table has the source's types
(numeric(38,10) stays numeric, timestamps stay timestamps), the primary key from ``keys`` and an
index on ``cursor``; the DDL is in ``etl_schema_changes`` with the run id. A new source column is
added; a widening is applied; anything else stops the load with one line and writes nothing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from tests.conftest import query, run_cli
from tests.integration.test_hostile_values import (  # noqa: F401 - mariadb_source is a fixture
    COLUMNS,
    ROWS_,
    checksums,
    hostile_csv,
    mariadb_source,
    sqlite_rows,
)
from tests.projects import write_project

HOSTILE_PG = (
    "CREATE TABLE hostile (id bigint primary key, txt text, ts timestamp, tstz timestamptz, d date, "
    "num numeric(38,10), big bigint, flag boolean, updated_at timestamptz not null default '2024-01-01 00:00+00')"
)
EXPECTED_TYPES = {
    "id": ("bigint", "NO"),
    "txt": ("text", "YES"),
    "ts": ("timestamp without time zone", "YES"),
    "tstz": ("timestamp with time zone", "YES"),
    "d": ("date", "YES"),
    "num": ("numeric(38,10)", "YES"),
    "big": ("bigint", "YES"),
    "flag": ("boolean", "YES"),
}


def project(source: str, *, extra: str = "") -> str:
    return f"""
    project: auto
    connections: {{src: {{}}}}
    tables:
      - {{target: hostile_copy, source: {{connection: src, {source}}}, strategy: merge, keys: [id]{extra}}}
    """


def pg_types(url: str, table: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
            "CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (table,),
        ).fetchall()
    return {name: (kind, nullable) for name, kind, nullable in rows}


def primary_key(url: str, table: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
            (table,),
        ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def pg_warehouse(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """PostgreSQL as the warehouse, holding the expected values (inserted with bound parameters)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(HOSTILE_PG.replace("hostile", "expected"))
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO expected ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * 8)})", ROWS_)
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    return pg_url


def assert_created_exactly(
    url: str, *, ts: str = "timestamp without time zone", tstz: str = "timestamp with time zone"
) -> None:
    expected = {**EXPECTED_TYPES, "ts": (ts, "YES"), "tstz": (tstz, "YES")}
    types = pg_types(url, "hostile_copy")
    assert {k: v for k, v in types.items() if k in expected} == expected
    assert primary_key(url, "hostile_copy") == ["id"]
    ledger = query(
        url.replace("postgresql://", "postgresql+psycopg://"),
        "SELECT change, ddl, run_id FROM etl_schema_changes WHERE target_table = 'hostile_copy'",
    )
    assert [row[0] for row in ledger][0] == "create"
    assert ledger[0][1].startswith("CREATE TABLE hostile_copy (id BIGINT NOT NULL, txt TEXT")
    assert "NUMERIC(38, 10)" in ledger[0][1] and ledger[0][1].endswith("PRIMARY KEY (id))")
    assert (
        ledger[0][2]
        == query(url.replace("postgresql://", "postgresql+psycopg://"), "SELECT max(run_id) FROM etl_runs")[0][0]
    )


def test_postgresql_source_creates_an_exact_target(etl_home: Path, pg_warehouse: str, monkeypatch) -> None:
    with psycopg.connect(pg_warehouse, autocommit=True) as conn:
        conn.execute(HOSTILE_PG)
        conn.execute(f"INSERT INTO hostile ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM expected")
    monkeypatch.setenv("ETL_CONN_SRC", pg_warehouse)
    write_project(etl_home, "auto", project("table: hostile", extra=", cursor: updated_at"))
    result = run_cli("--project", "auto", "--load-type", "F")
    assert result.code == 0, result.stderr
    assert checksums(pg_warehouse, "hostile_copy") == checksums(pg_warehouse, "expected")
    assert_created_exactly(pg_warehouse)
    with psycopg.connect(pg_warehouse) as conn:  # the cursor is indexed
        indexes = [r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'hostile_copy'")]
    assert any("(updated_at)" in d for d in indexes), indexes
    again = run_cli("--project", "auto", "--load-type", "I")  # nothing to create the second time
    assert again.code == 0, again.stderr
    ledger = query(
        pg_warehouse.replace("postgresql://", "postgresql+psycopg://"), "SELECT change FROM etl_schema_changes"
    )
    assert ledger == [("create",), ("create_index",)]


def test_sqlite_source_with_declared_types_creates_an_exact_target(
    etl_home: Path, pg_warehouse: str, monkeypatch
) -> None:
    path = etl_home / "metadata" / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            # SQLite's NUMERIC affinity would store num as a float (SQLite's rule): exact decimals live in text.
            "CREATE TABLE hostile (id INTEGER PRIMARY KEY, txt TEXT, ts TIMESTAMP, tstz TIMESTAMPTZ, d DATE, "
            "num TEXT, big BIGINT, flag BOOLEAN)"
        )
        conn.executemany("INSERT INTO hostile VALUES (?, ?, ?, ?, ?, ?, ?, ?)", sqlite_rows())
    monkeypatch.setenv("ETL_CONN_SRC", f"sqlite:///{path}")
    write_project(etl_home, "auto", project("table: hostile", extra=", columns: {num: {cast: 'numeric(38,10)'}}"))
    result = run_cli("--project", "auto", "--load-type", "F")
    assert result.code == 0, result.stderr
    assert checksums(pg_warehouse, "hostile_copy") == checksums(pg_warehouse, "expected")
    assert_created_exactly(pg_warehouse)


def test_sqlite_text_decimals_stay_text_without_a_cast(etl_home: Path, pg_warehouse: str, monkeypatch) -> None:
    path = etl_home / "metadata" / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE hostile (id INTEGER PRIMARY KEY, num TEXT)")
        conn.execute("INSERT INTO hostile VALUES (2, '9999999999999999999999999999.9999999999')")
    monkeypatch.setenv("ETL_CONN_SRC", f"sqlite:///{path}")
    write_project(etl_home, "auto", project("table: hostile"))
    assert run_cli("--project", "auto", "--load-type", "F").code == 0
    assert pg_types(pg_warehouse, "hostile_copy")["num"] == ("text", "YES")
    assert query(pg_warehouse, "SELECT num FROM hostile_copy") == [("9999999999999999999999999999.9999999999",)]


CASTS = (
    ", columns: {id: {cast: bigint}, ts: {cast: timestamp}, tstz: {cast: timestamptz}, d: {cast: date}, "
    "num: {cast: 'numeric(38,10)'}, big: {cast: bigint}, flag: {cast: boolean}}"
)


def test_csv_source_with_casts_creates_an_exact_target(etl_home: Path, pg_warehouse: str, monkeypatch) -> None:
    (etl_home / "in").mkdir()
    (etl_home / "in" / "hostile.csv").write_bytes(hostile_csv())
    monkeypatch.setenv("ETL_CONN_SRC", "csv:///in")
    write_project(etl_home, "auto", project("file: hostile.csv", extra=CASTS))
    result = run_cli("--project", "auto", "--load-type", "F")
    assert result.code == 0, result.stderr
    assert checksums(pg_warehouse, "hostile_copy") == checksums(pg_warehouse, "expected")
    assert_created_exactly(pg_warehouse)


def test_s3_parquet_source_creates_an_exact_target(
    etl_home: Path, pg_warehouse: str, s3_server, s3_bucket: str, monkeypatch
) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("txt", pa.large_string()),
            ("ts", pa.timestamp("us")),
            ("tstz", pa.timestamp("us", tz="UTC")),
            ("d", pa.date32()),
            ("num", pa.decimal128(38, 10)),
            ("big", pa.int64()),
            ("flag", pa.bool_()),
        ]
    )
    table = pa.Table.from_pylist([dict(zip(COLUMNS, row, strict=True)) for row in ROWS_], schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    s3_server.client().put_object(Bucket=s3_bucket, Key="in/hostile.parquet", Body=buffer.getvalue())
    monkeypatch.setenv("ETL_CONN_SRC", s3_server.url(s3_bucket))
    monkeypatch.setenv("ETL_CONN_SRC_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("ETL_CONN_SRC_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    write_project(etl_home, "auto", project("pattern: 'in/*.parquet'"))
    result = run_cli("--project", "auto", "--load-type", "F")
    assert result.code == 0, result.stderr
    assert checksums(pg_warehouse, "hostile_copy") == checksums(pg_warehouse, "expected")
    assert_created_exactly(pg_warehouse)


@pytest.mark.usefixtures("mariadb_source")  # the hostile table, as tests/integration/test_hostile_values.py makes it
def test_mariadb_source_query_creates_an_exact_target(
    etl_home: Path, pg_warehouse: str, mysql_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("ETL_CONN_SRC", mysql_url)
    write_project(
        etl_home, "auto", project("query: sql/hostile.sql"), files={"sql/hostile.sql": "SELECT * FROM hostile"}
    )
    result = run_cli("--project", "auto", "--load-type", "F")
    assert result.code == 0, result.stderr
    # MySQL has no zoned timestamp: the instant arrives as UTC wall time in a timestamp column.
    with psycopg.connect(pg_warehouse, autocommit=True) as conn:
        conn.execute("ALTER TABLE expected ALTER COLUMN tstz TYPE timestamp USING tstz AT TIME ZONE 'UTC'")
    assert checksums(pg_warehouse, "hostile_copy") == checksums(pg_warehouse, "expected")
    assert_created_exactly(pg_warehouse, ts="timestamp(6) without time zone", tstz="timestamp(6) without time zone")


# -- evolution -------------------------------------------------------------------------------------


@pytest.fixture
def items(etl_home: Path, monkeypatch) -> Path:
    path = etl_home / "metadata" / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(10), qty SMALLINT, price NUMERIC(8,2), "
            "updated_at TIMESTAMP NOT NULL)"
        )
        conn.execute("INSERT INTO items VALUES (1, 'one', 1, 1.50, '2024-01-01 10:00:00')")
    monkeypatch.setenv("ETL_CONN_SRC", f"sqlite:///{path}")
    return path


def items_project(etl_home: Path, extra: str = "") -> None:
    write_project(
        etl_home,
        "evolve",
        f"""
        project: evolve
        connections: {{src: {{}}}}
        tables:
          - {{target: items, source: {{connection: src, table: items}}, strategy: merge, keys: [id],
              cursor: updated_at{extra}}}
        """,
    )


def source_change(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)


def test_a_new_source_column_is_added_then_a_widening_applied(etl_home: Path, pg_warehouse: str, items: Path) -> None:
    items_project(etl_home)
    assert run_cli("--project", "evolve", "--load-type", "F").code == 0
    source_change(
        items,
        "ALTER TABLE items ADD COLUMN colour TEXT",
        "INSERT INTO items VALUES (2, 'two', 2, 2.50, '2024-01-02 10:00:00', 'red')",
    )
    result = run_cli("--project", "evolve", "--load-type", "I")
    assert result.code == 0, result.stderr
    url = pg_warehouse.replace("postgresql://", "postgresql+psycopg://")
    assert query(url, "SELECT id, colour FROM items ORDER BY id") == [(1, None), (2, "red")]
    ledger = query(url, "SELECT change, column_name, ddl, run_id FROM etl_schema_changes ORDER BY change_id")
    assert [(r[0], r[1]) for r in ledger] == [
        ("create", None),
        ("create_index", "updated_at"),
        ("add_column", "colour"),
    ]
    assert ledger[2][2] == "ALTER TABLE items ADD COLUMN colour TEXT"
    assert ledger[2][3] == query(url, "SELECT max(run_id) FROM etl_runs")[0][0]

    # SQLite cannot alter a column's type: the source table is rebuilt wider.
    source_change(
        items,
        "CREATE TABLE items2 (id INTEGER PRIMARY KEY, name VARCHAR(50), qty BIGINT, price NUMERIC(12,2), "
        "updated_at TIMESTAMP NOT NULL, colour TEXT)",
        "INSERT INTO items2 SELECT * FROM items",
        "INSERT INTO items2 VALUES (3, 'a name longer than ten', 9000000000, 1234567890.12, "
        "'2024-01-03 10:00:00', NULL)",
        "DROP TABLE items",
        "ALTER TABLE items2 RENAME TO items",
    )
    result = run_cli("--project", "evolve", "--load-type", "I")
    assert result.code == 0, result.stderr
    types = pg_types(pg_warehouse, "items")
    assert types["name"][0] == "character varying(50)"
    assert types["qty"][0] == "bigint"
    assert types["price"][0] == "numeric(12,2)"
    assert query(url, "SELECT qty, price FROM items WHERE id = 3")[0][0] == 9000000000
    widened = query(url, "SELECT column_name FROM etl_schema_changes WHERE change = 'widen' ORDER BY column_name")
    assert widened == [("name",), ("price",), ("qty",)]


def test_a_narrowing_change_stops_the_load_and_writes_nothing(etl_home: Path, pg_warehouse: str, items: Path) -> None:
    items_project(etl_home)
    assert run_cli("--project", "evolve", "--load-type", "F").code == 0
    source_change(
        items,
        "CREATE TABLE items2 (id INTEGER PRIMARY KEY, name VARCHAR(10), qty TEXT, price NUMERIC(8,2), "
        "updated_at TIMESTAMP NOT NULL)",
        "INSERT INTO items2 SELECT * FROM items",
        "INSERT INTO items2 VALUES (2, 'two', 'many', 1, '2024-01-02 10:00:00')",
        "DROP TABLE items",
        "ALTER TABLE items2 RENAME TO items",
    )
    result = run_cli("--project", "evolve", "--load-type", "I")
    assert result.code == 1
    line = [ln for ln in result.stderr.splitlines() if "qty" in ln]
    assert line and "smallint in the target but text in the source" in line[0] and "not a widening" in line[0], (
        result.stderr
    )
    url = pg_warehouse.replace("postgresql://", "postgresql+psycopg://")
    assert query(url, "SELECT count(*) FROM items") == [(1,)]
    assert pg_types(pg_warehouse, "items")["qty"][0] == "smallint"


def test_on_schema_change_fail_stops_before_anything_is_written(etl_home: Path, pg_warehouse: str, items: Path) -> None:
    items_project(etl_home, ", on_schema_change: fail")
    assert run_cli("--project", "evolve", "--load-type", "F").code == 0
    source_change(
        items,
        "ALTER TABLE items ADD COLUMN colour TEXT",
        "INSERT INTO items VALUES (2, 'two', 2, 2.50, '2024-01-02 10:00:00', 'red')",
    )
    result = run_cli("--project", "evolve", "--load-type", "I")
    assert result.code == 1
    assert "differs from the source and on_schema_change is fail: new column colour (text)" in result.stderr
    url = pg_warehouse.replace("postgresql://", "postgresql+psycopg://")
    assert query(url, "SELECT count(*) FROM items") == [(1,)]
    assert "colour" not in pg_types(pg_warehouse, "items")


def test_on_schema_change_ignore_loads_the_common_columns(etl_home: Path, pg_warehouse: str, items: Path) -> None:
    items_project(etl_home, ", on_schema_change: ignore")
    assert run_cli("--project", "evolve", "--load-type", "F").code == 0
    source_change(
        items,
        "ALTER TABLE items ADD COLUMN colour TEXT",
        "INSERT INTO items VALUES (2, 'two', 2, 2.50, '2024-01-02 10:00:00', 'red')",
    )
    result = run_cli("--project", "evolve", "--load-type", "I")
    assert result.code == 0, result.stderr
    url = pg_warehouse.replace("postgresql://", "postgresql+psycopg://")
    assert query(url, "SELECT id, name FROM items ORDER BY id") == [(1, "one"), (2, "two")]
    assert "colour" not in pg_types(pg_warehouse, "items")


def test_a_column_gone_from_the_source_stays_and_is_loaded_as_null(
    etl_home: Path, pg_warehouse: str, items: Path
) -> None:
    items_project(etl_home)
    assert run_cli("--project", "evolve", "--load-type", "F").code == 0
    source_change(
        items,
        "CREATE TABLE items2 (id INTEGER PRIMARY KEY, name VARCHAR(10), price NUMERIC(8,2), "
        "updated_at TIMESTAMP NOT NULL)",
        "INSERT INTO items2 SELECT id, name, price, updated_at FROM items",
        "INSERT INTO items2 VALUES (2, 'two', 2.50, '2024-01-02 10:00:00')",
        "DROP TABLE items",
        "ALTER TABLE items2 RENAME TO items",
    )
    result = run_cli("--project", "evolve", "--load-type", "I")
    assert result.code == 0, result.stderr
    url = pg_warehouse.replace("postgresql://", "postgresql+psycopg://")
    assert query(url, "SELECT id, qty FROM items ORDER BY id") == [(1, 1), (2, None)]
    logs = "".join(p.read_text(encoding="utf-8") for p in (etl_home / "metadata").rglob("*.log"))
    assert "column qty is no longer returned by the source; it stays in the table and is loaded as NULL" in logs


def test_create_false_keeps_a_missing_table_an_error(etl_home: Path, pg_warehouse: str, items: Path) -> None:
    items_project(etl_home, ", create: false")
    result = run_cli("--project", "evolve", "--load-type", "F")
    assert result.code == 1
    assert "target table items does not exist and create is false for it" in result.stderr
    with psycopg.connect(pg_warehouse) as conn:
        assert conn.execute("SELECT to_regclass('items')").fetchone() == (None,)


def test_dry_run_prints_the_ddl_and_creates_nothing(etl_home: Path, pg_warehouse: str, items: Path) -> None:
    items_project(etl_home)
    result = run_cli("--project", "evolve", "--load-type", "F", "--dry-run")
    assert result.code == 0, result.stderr
    assert "target items: would be created (5 columns)" in result.stdout
    assert "CREATE TABLE items (" in result.stdout and "PRIMARY KEY (id)" in result.stdout
    assert "CREATE INDEX ix_items_updated_at ON items (updated_at)" in result.stdout
    with psycopg.connect(pg_warehouse) as conn:
        assert conn.execute("SELECT to_regclass('items')").fetchone() == (None,)


def test_a_hand_written_ddl_file_wins(etl_home: Path, pg_warehouse: str, items: Path) -> None:
    write_project(
        etl_home,
        "evolve",
        """
        project: evolve
        connections: {src: {}}
        ddl: [evolve/001_items.sql]
        tables:
          - {target: items, source: {connection: src, table: items}, strategy: merge, keys: [id], cursor: updated_at}
        """,
        ddl={
            "evolve/001_items.sql": "CREATE TABLE items (id bigint primary key, name text, qty numeric(10,0), "
            "price real, updated_at timestamptz not null);"
        },
    )
    result = run_cli("--project", "evolve", "--load-type", "F")
    assert result.code == 0, result.stderr
    types = pg_types(pg_warehouse, "items")
    assert types["qty"][0] == "numeric(10,0)" and types["price"][0] == "real"  # the operator's types stay
    url = pg_warehouse.replace("postgresql://", "postgresql+psycopg://")
    assert query(url, "SELECT count(*) FROM etl_schema_changes") == [(0,)]


def test_sqlite_warehouse_creates_and_adds_columns(etl_home: Path, items: Path) -> None:
    items_project(etl_home)
    assert run_cli("--project", "evolve", "--load-type", "F").code == 0
    source_change(
        items,
        "ALTER TABLE items ADD COLUMN colour TEXT",
        "INSERT INTO items VALUES (2, 'two', 2, 2.50, '2024-01-02 10:00:00', 'red')",
    )
    result = run_cli("--project", "evolve", "--load-type", "I")
    assert result.code == 0, result.stderr
    url = f"sqlite:///{etl_home / 'metadata' / 'warehouse.db'}"
    assert query(url, "SELECT id, name, colour FROM items ORDER BY id") == [(1, "one", None), (2, "two", "red")]
    assert [r[0] for r in query(url, "SELECT change FROM etl_schema_changes ORDER BY change_id")] == [
        "create",
        "create_index",
        "add_column",
    ]


def test_mariadb_warehouse_creates_the_table_with_a_text_key(etl_home: Path, mysql_url: str, monkeypatch) -> None:
    path = etl_home / "metadata" / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT, updated_at TIMESTAMP NOT NULL)")
        conn.execute("INSERT INTO codes VALUES ('FR', 'France', '2024-01-01 00:00:00')")
    monkeypatch.setenv("ETL_CONN_SRC", f"sqlite:///{path}")
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", mysql_url)
    write_project(
        etl_home,
        "codes",
        """
        project: codes
        connections: {src: {}}
        tables:
          - {target: codes, source: {connection: src, table: codes}, strategy: merge, keys: [code], cursor: updated_at}
        """,
    )
    result = run_cli("--project", "codes", "--load-type", "F")
    assert result.code == 0, result.stderr
    url = mysql_url.replace("mysql://", "mysql+pymysql://")
    assert query(url, "SELECT code, label FROM codes") == [("FR", "France")]
    key = query(
        url,
        "SELECT column_name FROM information_schema.key_column_usage WHERE table_name = 'codes' "
        "AND constraint_name = 'PRIMARY' AND table_schema = database()",
    )
    assert key == [("code",)]


def test_check_reports_each_table_s_target(etl_home: Path, pg_warehouse: str, items: Path) -> None:
    items_project(etl_home)
    before = run_cli("--project", "evolve", "--check")
    assert before.code == 0, before.stdout + before.stderr
    assert "OK      table items: the source describes its columns; target items would be created (5 columns)" in (
        before.stdout
    )
    assert run_cli("--project", "evolve", "--load-type", "F").code == 0
    assert "target items matches" in run_cli("--project", "evolve", "--check").stdout
    source_change(items, "ALTER TABLE items ADD COLUMN colour TEXT")
    assert "target items would be evolved: add colour" in run_cli("--project", "evolve", "--check").stdout
    items_project(etl_home, ", on_schema_change: fail")
    warned = run_cli("--project", "evolve", "--check")
    assert warned.code == 0  # the connections answer; the table's line says what the load would stop on
    assert (
        "WARN    table items: the load would stop: target table items differs from the source and "
        "on_schema_change is fail: new column colour (text)"
    ) in warned.stdout
