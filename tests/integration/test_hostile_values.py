"""Hostile values arrive exactly in PostgreSQL from every source that runs here, on every write path:
COPY pass-through (binary and text), Arrow -> CSV COPY, and Python rows -> COPY.

Each column is compared with a checksum of its text form against the same values inserted
directly with bound parameters, plus the NULL count, so NULL and '' can never be confused."""

from __future__ import annotations

import csv
import io
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg
import pymysql
import pytest

from connectors import open_connector
from connectors.base import ARROW, PGCOPY, ROWS, ReadRequest, TableName
from connectors.postgresql import PgCopyStream
from script_factory.config import Strategy
from script_factory.load_strategies import LoadPlan
from script_factory.load_strategies import load as apply_load
from script_factory.window import Window
from utilities.progress import Progress
from utilities.secrets import Secret

PARIS_SUMMER = timezone(timedelta(hours=2))
LONG_TEXT = "long text 🐘 ✓ " * 20_000  # 300k characters
# id, txt, ts (naive), tstz, d, num numeric(38,10), big bigint, flag boolean
ROWS_ = [
    (1, None, None, None, None, None, None, None),
    (
        2,
        "",
        datetime(2026, 3, 29, 2, 30),
        datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=UTC),
        date(1969, 12, 31),
        Decimal("9999999999999999999999999999.9999999999"),
        9223372036854775807,
        True,
    ),
    (
        3,
        "emoji 😀🇫🇷, combining e\u0301 a\u0308, CJK 漢字",
        datetime(1901, 12, 13, 20, 45, 52, 1),
        datetime(2026, 3, 29, 3, 0, 0, tzinfo=PARIS_SUMMER),
        date(1900, 1, 1),
        Decimal("-9999999999999999999999999999.9999999999"),
        -9223372036854775808,
        False,
    ),
    (
        4,
        "line1\nline2\r\nline3\ttab \"double\" 'single' back\\slash \\N \\. ,;|",
        datetime(2026, 10, 25, 2, 30),
        datetime(2026, 10, 25, 1, 0, 0, tzinfo=UTC),
        date(1583, 10, 15),
        Decimal("0.0000000001"),
        0,
        True,
    ),
    (
        5,
        LONG_TEXT,
        datetime(2000, 2, 29, 23, 59, 59, 999999),
        datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC),
        date(2400, 2, 29),
        Decimal("-0.0000000001"),
        -1,
        False,
    ),
    (6, "NULL", datetime(1970, 1, 1), datetime(1970, 1, 1, tzinfo=UTC), date(1970, 1, 1), Decimal("0"), 1, None),
]
COLUMNS = ["id", "txt", "ts", "tstz", "d", "num", "big", "flag"]
PG_DDL = (
    "(id bigint primary key, txt text, ts timestamp, tstz timestamptz, d date, num numeric(38,10), "
    "big bigint, flag boolean)"
)


def checksums(url: str, table: str, renamed: dict[str, str] | None = None) -> dict[str, tuple[str, int]]:
    """Per column: md5 of the values' text in id order, and the number of NULLs (``renamed``: the
    table's name of a column, by its name in COLUMNS)."""
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return {
            column: conn.execute(
                f"SELECT md5(string_agg(coalesce({name}::text, '<null>'), '|' ORDER BY id)), "
                f"count(*) FILTER (WHERE {name} IS NULL) FROM {table}"
            ).fetchone()
            for column, name in ((c, (renamed or {}).get(c, c)) for c in COLUMNS)
        }


@pytest.fixture
def warehouse(pg_url: str) -> Iterator[str]:
    """PostgreSQL with the expected values (inserted with bound parameters) and empty targets."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE expected {PG_DDL}")
        conn.execute(f"CREATE TABLE target {PG_DDL}")
        conn.execute(
            "CREATE TABLE target_cast (id bigint, txt varchar, ts timestamp, tstz timestamptz, d date, "
            "num numeric, big numeric(20), flag boolean)"
        )
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO expected VALUES ({', '.join(['%s'] * 8)})", ROWS_)
    yield pg_url


def load(
    warehouse: str,
    home: Path,
    source_url: str,
    request: ReadRequest,
    table: str = "target",
    expected_rows: int = len(ROWS_),
) -> str:
    """Read ``request`` from the source and write it into ``table`` with replace; returns the write path."""
    source = open_connector("src", Secret(source_url), home)
    target = open_connector("warehouse", Secret(warehouse), home)
    window = Window(start=datetime(1, 1, 1), end=None, filtered=False, start_reason="test")
    try:
        with source.read(request) as stream:
            stats = apply_load(
                target, stream, LoadPlan(TableName(table), Strategy.REPLACE, (), None, window), Progress("test", 3600)
            )
        assert stats.rows == expected_rows
        return stats.path
    finally:
        source.close()
        target.close()


def assert_exact(warehouse: str, table: str = "target") -> None:
    assert checksums(warehouse, table) == checksums(warehouse, "expected")


def test_postgres_binary_pass_through(warehouse: str, tmp_path: Path) -> None:
    request = ReadRequest(table=TableName("expected"), accept=frozenset({PGCOPY, ARROW, ROWS}))
    assert load(warehouse, tmp_path, warehouse, request) == "COPY pass-through (binary)"
    assert_exact(warehouse)


def test_postgres_text_pass_through_when_types_differ(warehouse: str, tmp_path: Path) -> None:
    request = ReadRequest(table=TableName("expected"), accept=frozenset({PGCOPY, ROWS}))
    assert load(warehouse, tmp_path, warehouse, request, "target_cast") == "COPY pass-through (text)"
    assert checksums(warehouse, "target_cast") == checksums(warehouse, "expected")


def test_postgres_python_rows(warehouse: str, tmp_path: Path) -> None:
    request = ReadRequest(table=TableName("expected"), accept=frozenset({ROWS}))
    assert load(warehouse, tmp_path, warehouse, request) == "rows"
    assert_exact(warehouse)


def sqlite_rows() -> list[tuple[object, ...]]:
    """The hostile rows as SQLite holds them: dates, timestamps and decimals as text, booleans as 0/1."""
    return [
        (
            i,
            t,
            ts.isoformat(" ") if ts else None,
            tz.isoformat(" ") if tz else None,
            d.isoformat() if d else None,
            str(n) if n is not None else None,
            b,
            None if f is None else int(f),
        )
        for i, t, ts, tz, d, n, b, f in ROWS_
    ]


def test_sqlite_source(warehouse: str, tmp_path: Path) -> None:
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE hostile (id INTEGER, txt TEXT, ts TEXT, tstz TEXT, d TEXT, num TEXT, big INTEGER, "
            "flag INTEGER)"
        )
        conn.executemany("INSERT INTO hostile VALUES (?, ?, ?, ?, ?, ?, ?, ?)", sqlite_rows())
    request = ReadRequest(table=TableName("hostile"), accept=frozenset({PGCOPY, ARROW, ROWS}))
    assert load(warehouse, tmp_path, f"sqlite:///{path}", request) == "rows"
    assert_exact(warehouse)


def mariadb_hostile_tables(mysql_url: str, *names: str) -> None:
    """Tables ``names`` in the MariaDB database of ``mysql_url``, each holding the hostile rows."""
    database = mysql_url.rsplit("/", 1)[1]
    with pymysql.connect(host="127.0.0.1", user="root", database=database, charset="utf8mb4", autocommit=True) as conn:
        with conn.cursor() as cur:
            for name in names:
                cur.execute(
                    f"CREATE TABLE {name} (id BIGINT PRIMARY KEY, txt LONGTEXT, ts DATETIME(6), tstz DATETIME(6), "
                    "d DATE, num DECIMAL(38,10), big BIGINT, flag BOOLEAN) CHARACTER SET utf8mb4"
                )
                cur.executemany(
                    f"INSERT INTO {name} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        # MySQL has no time zone type: the instant is stored as UTC wall time.
                        (i, t, ts, tz.astimezone(UTC).replace(tzinfo=None) if tz else None, d, n, b, f)
                        for i, t, ts, tz, d, n, b, f in ROWS_
                    ],
                )


@pytest.fixture
def mariadb_source(mysql_url: str) -> str:
    mariadb_hostile_tables(mysql_url, "hostile")
    return mysql_url


#: the MariaDB write paths into PostgreSQL: (what the target accepts, pgpq installed, the path taken)
MARIADB_PATHS = pytest.mark.parametrize(
    ("accept", "pgpq", "path"),
    [
        (frozenset({PGCOPY, ARROW, ROWS}), True, "Arrow -> COPY (binary)"),
        (frozenset({PGCOPY, ARROW, ROWS}), False, "Arrow -> COPY (csv)"),
        (frozenset({ROWS}), True, "rows"),
    ],
)


@MARIADB_PATHS
def test_mariadb_source(
    warehouse: str,
    tmp_path: Path,
    mariadb_source: str,
    monkeypatch: pytest.MonkeyPatch,
    accept: frozenset[str],
    pgpq: bool,
    path: str,
) -> None:
    """Binary COPY encoded from Arrow, its CSV fallback (pgpq missing), and Python rows."""
    if not pgpq:
        monkeypatch.setitem(sys.modules, "pgpq", None)  # import pgpq raises ImportError
    request = ReadRequest(table=TableName("hostile"), accept=accept, keys=("id",), chunk_size=2)
    assert load(warehouse, tmp_path, mariadb_source, request) == path
    assert_exact(warehouse)


def hostile_csv() -> bytes:
    """PostgreSQL's CSV convention: NULL is an empty unquoted field, '' is a quoted empty field."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in ROWS_:
        writer.writerow([_csv_text(v) for v in row])
    return out.getvalue().replace('"<null>"', "").encode("utf-8")


def _csv_text(value: object) -> str:
    if value is None:
        return "<null>"
    if isinstance(value, datetime):
        return value.isoformat(" ")
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_csv_folder_source(warehouse: str, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "hostile.csv").write_bytes(hostile_csv())
    request = ReadRequest(options={"file": "hostile.csv"}, accept=frozenset({PGCOPY, ARROW, ROWS}))
    load(warehouse, tmp_path, "csv:///in", request)
    assert_exact(warehouse)


def test_s3_source(warehouse: str, tmp_path: Path, s3_server, s3_bucket: str) -> None:
    s3_server.client().put_object(Bucket=s3_bucket, Key="in/hostile.csv", Body=hostile_csv())
    request = ReadRequest(options={"pattern": "in/*.csv"}, accept=frozenset({PGCOPY, ARROW, ROWS}))
    url = s3_server.url(s3_bucket)
    source_vars = {
        "ETL_CONN_SRC_ACCESS_KEY_ID": s3_server.access_key_id,
        "ETL_CONN_SRC_SECRET_ACCESS_KEY": s3_server.secret_access_key,
    }
    source = open_connector("src", Secret(url), tmp_path, source_vars)
    target = open_connector("warehouse", Secret(warehouse), tmp_path)
    window = Window(start=datetime(1, 1, 1), end=None, filtered=False, start_reason="test")
    try:
        with source.read(request) as stream:
            assert not isinstance(stream, PgCopyStream)
            stats = apply_load(
                target,
                stream,
                LoadPlan(TableName("target"), Strategy.REPLACE, (), None, window),
                Progress("test", 3600),
            )
        assert stats.rows == len(ROWS_)
    finally:
        source.close()
        target.close()
    assert_exact(warehouse)


TRANSFORM_PROJECT = """
project: hostile_tx
connections:
  src: {}
tables:
  - target: renamed
    source: {connection: src, table: hostile_src}
    strategy: replace
    columns:
      flag: {rename: is_flag}
      code: {trim: true, null_if: [''], cast: integer, rename: code_num}
"""


def test_rename_cast_trim_through_the_runner_leave_other_columns_exact(
    warehouse: str, etl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real script_runner.py with transforms (rows, no COPY pass-through): the columns not
    transformed arrive exactly, the renamed one too, the trimmed and cast one as integers."""
    from tests.conftest import run_cli
    from tests.projects import write_project

    codes = [" 42 ", "", "\t7\n", None, "-1", " 0"]
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE hostile_src {PG_DDL}")
        conn.execute("ALTER TABLE hostile_src ADD COLUMN code text")
        conn.execute(
            "CREATE TABLE renamed (id bigint primary key, txt text, ts timestamp, tstz timestamptz, d date, "
            "num numeric(38,10), big bigint, is_flag boolean, code_num integer)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO hostile_src VALUES ({', '.join(['%s'] * 9)})",
                [(*row, code) for row, code in zip(ROWS_, codes, strict=True)],
            )
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", warehouse)
    monkeypatch.setenv("ETL_CONN_SRC", warehouse)
    write_project(etl_home, "hostile_tx", TRANSFORM_PROJECT)
    result = run_cli("--project", "hostile_tx", "--load-type", "F")
    assert result.code == 0, result.stderr
    got, want = checksums(warehouse, "renamed", renamed={"flag": "is_flag"}), checksums(warehouse, "expected")
    assert got == want
    with psycopg.connect(warehouse) as conn:
        assert conn.execute("SELECT code_num FROM renamed ORDER BY id").fetchall() == [
            (42,),
            (None,),
            (7,),
            (None,),
            (-1,),
            (0,),
        ]
