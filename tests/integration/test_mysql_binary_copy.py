"""MariaDB -> PostgreSQL through binary COPY encoded from Arrow (connectors.pg_binary): hostile values of
every MySQL type the encoder maps arrive exactly, compared value by value with the same values inserted
into PostgreSQL with bound parameters; the CSV fallback (pgpq missing, or a column without an exact
binary form) and the Python rows path load the same values."""

from __future__ import annotations

import sys
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import psycopg
import pymysql
import pytest

from connectors.base import ARROW, ROWS, ReadRequest, TableName
from tests.integration.test_hostile_values import MARIADB_PATHS, load
from utilities.errors import FatalError

# (column, MariaDB type, PostgreSQL type of the target); the targets are what a user would declare
COLUMNS = [
    ("ti", "TINYINT", "smallint"),
    ("si", "SMALLINT", "smallint"),
    ("mi", "MEDIUMINT", "integer"),
    ("i", "INT", "integer"),
    ("bi", "BIGINT", "bigint"),
    ("ui", "INT UNSIGNED", "bigint"),
    ("ubi", "BIGINT UNSIGNED", "numeric(20)"),
    ("flag", "TINYINT(1)", "boolean"),
    ("f", "FLOAT", "real"),
    ("dbl", "DOUBLE", "double precision"),
    ("d12", "DECIMAL(12,2)", "numeric(12,2)"),
    ("d38", "DECIMAL(38,10)", "numeric(38,10)"),
    ("d0", "DECIMAL(5,0)", "numeric"),  # no typmod: the source's scale decides the text
    ("du", "DECIMAL(10,3) UNSIGNED", "numeric"),
    ("vc", "VARCHAR(60)", "varchar(60)"),
    ("ch", "CHAR(2)", "char(2)"),
    ("tx", "LONGTEXT", "text"),
    ("js", "JSON", "jsonb"),
    ("dt", "DATE", "date"),
    ("ts", "DATETIME(6)", "timestamp"),
    ("tstz", "DATETIME(6)", "timestamptz"),
    ("tm", "TIME(6)", "time"),
]
NAMES = [c for c, _, _ in COLUMNS]
HOSTILE_TEXT = "line1\nline2\r\nline3\ttab \"double\" 'single' back\\slash \\N \\. ,;| emoji 😀🇫🇷 e\u0301 漢字"
ROWS_ = [
    (1, *([None] * len(COLUMNS))),
    (
        2,
        *(127, 32767, 8388607, 2147483647, 9223372036854775807, 4294967295, 18446744073709551615, 1),
        *(0.5, 1.7976931348623157e308),
        *(Decimal("9999999999.99"), Decimal("9999999999999999999999999999.9999999999"), Decimal("99999")),
        Decimal("9999999.999"),
        *(HOSTILE_TEXT[:60], "ab", HOSTILE_TEXT, '{"a": [1, "x\\ny", null], "b\\"q": "😀"}'),
        *(date(9999, 12, 31), datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(2038, 1, 19, 3, 14, 8, 1)),
        time(23, 59, 59, 999999),
    ),
    (
        3,
        *(-128, -32768, -8388608, -2147483648, -9223372036854775808, 0, 0, 0),
        *(-1024.25, -2.2250738585072014e-308),
        *(Decimal("-9999999999.99"), Decimal("-9999999999999999999999999999.9999999999"), Decimal("-99999")),
        Decimal("0.001"),
        *("", "", "", "[]"),
        *(date(1000, 1, 1), datetime(1000, 1, 1, 0, 0, 0, 1), datetime(1969, 12, 31, 23, 59, 59, 999999)),
        time(0, 0),
    ),
    (
        4,
        *(0, -1, 1, -1, 1, 1, 9223372036854775808, 1),
        *(0.001, 3.141592653589793),
        *(Decimal("-0.01"), Decimal("0.0000000001"), Decimal("0")),
        Decimal("0.000"),
        *("\\N", "\t ", "NULL", '"plain string"'),
        *(date(1969, 12, 31), datetime(1970, 1, 1), datetime(2000, 2, 29, 12, 0, 0, 500000)),
        time(12, 30, 0, 1),
    ),
]


@pytest.fixture
def source(mysql_url: str) -> str:
    database = mysql_url.rsplit("/", 1)[1]
    with pymysql.connect(host="127.0.0.1", user="root", database=database, charset="utf8mb4", autocommit=True) as conn:
        with conn.cursor() as cur:
            columns = ", ".join(f"{name} {kind}" for name, kind, _ in COLUMNS)
            cur.execute(f"CREATE TABLE wide (id BIGINT PRIMARY KEY, {columns}) CHARACTER SET utf8mb4")
            cur.executemany(f"INSERT INTO wide VALUES ({', '.join(['%s'] * (len(COLUMNS) + 1))})", ROWS_)
    return mysql_url


@pytest.fixture
def warehouse(pg_url: str) -> str:
    """The expected values inserted with bound parameters, and an empty target of the same types."""
    ddl = f"(id bigint primary key, {', '.join(f'{name} {kind}' for name, _, kind in COLUMNS)})"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute(f"CREATE TABLE expected {ddl}")
        conn.execute(f"CREATE TABLE target {ddl}")
        with conn.cursor() as cur:
            flag = 1 + NAMES.index("flag")  # TINYINT(1) 0/1 is a boolean in PostgreSQL
            expected = [(*r[:flag], None if r[flag] is None else bool(r[flag]), *r[flag + 1 :]) for r in ROWS_]
            cur.executemany(f"INSERT INTO expected VALUES ({', '.join(['%s'] * (len(COLUMNS) + 1))})", expected)
    return pg_url


def values(url: str, table: str) -> list[tuple[str | None, ...]]:
    """Every value as PostgreSQL writes it as text, in key order (NULL stays None, '' stays '')."""
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        rows = conn.execute(f"SELECT {', '.join(f'{n}::text' for n in ['id', *NAMES])} FROM {table} ORDER BY id")
        return list(rows.fetchall())


def assert_exact(url: str) -> None:
    got, want = values(url, "target"), values(url, "expected")
    for got_row, want_row in zip(got, want, strict=True):
        for name, got_value, want_value in zip(["id", *NAMES], got_row, want_row, strict=True):
            assert got_value == want_value, f"row {want_row[0]}, column {name}"


@MARIADB_PATHS
def test_every_mapped_type_arrives_exactly(
    source: str,
    warehouse: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    accept: frozenset[str],
    pgpq: bool,
    path: str,
) -> None:
    if not pgpq:
        monkeypatch.setitem(sys.modules, "pgpq", None)  # import pgpq raises ImportError
    request = ReadRequest(table=TableName("wide"), accept=accept, keys=("id",), chunk_size=3)
    assert load(warehouse, tmp_path, source, request, expected_rows=len(ROWS_)) == path
    assert_exact(warehouse)


def _one_column(mysql_url: str, pg_url: str, mysql_type: str, pg_type: str, rows: list[tuple[object, ...]]) -> None:
    database = mysql_url.rsplit("/", 1)[1]
    with pymysql.connect(host="127.0.0.1", user="root", database=database, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE one (id BIGINT PRIMARY KEY, x {mysql_type})")
            cur.executemany("INSERT INTO one VALUES (%s, %s)", rows)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE target (id bigint primary key, x {pg_type})")


def test_a_column_without_an_exact_binary_form_is_written_as_csv(
    mysql_url: str, pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A DOUBLE into a real: PostgreSQL rounds the text; a float32 cast could round differently."""
    rows = [(1, 0.1), (2, None), (3, -1e30)]
    _one_column(mysql_url, pg_url, "DOUBLE", "real", rows)
    request = ReadRequest(table=TableName("one"), accept=frozenset({ARROW, ROWS}), keys=("id",))
    with caplog.at_level("INFO", logger="connectors.pg_binary"):
        assert load(pg_url, tmp_path, mysql_url, request, expected_rows=3) == "Arrow -> COPY (csv)"
    assert "column x: double has no exact binary form for real; writing CSV" in caplog.text
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT x::text FROM target ORDER BY id").fetchall() == [("0.1",), (None,), ("-1e+30",)]


def test_a_decimal_wider_than_decimal128_is_written_as_csv(mysql_url: str, pg_url: str, tmp_path: Path) -> None:
    """DECIMAL(65,30) has no Arrow decimal128 form: the whole load writes CSV, every digit kept."""
    rows = [(1, Decimal("99999999999999999999999999999999999.999999999999999999999999999999")), (2, None)]
    rows.append((3, Decimal("-0.000000000000000000000000000001")))
    _one_column(mysql_url, pg_url, "DECIMAL(65,30)", "numeric(65,30)", rows)
    request = ReadRequest(table=TableName("one"), accept=frozenset({ARROW, ROWS}), keys=("id",))
    assert load(pg_url, tmp_path, mysql_url, request, expected_rows=3) == "Arrow -> COPY (csv)"
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT x FROM target ORDER BY id").fetchall() == [(v,) for _, v in rows]


def test_bytes_are_written_in_binary(mysql_url: str, pg_url: str, tmp_path: Path) -> None:
    """VARBINARY into bytea (the CSV path cannot carry bytes; before pgpq they went as Python rows)."""
    rows = [(1, b"\x00\xff\n\\,\"'"), (2, None), (3, b"")]
    _one_column(mysql_url, pg_url, "VARBINARY(20)", "bytea", rows)
    request = ReadRequest(table=TableName("one"), accept=frozenset({ARROW, ROWS}), keys=("id",))
    assert load(pg_url, tmp_path, mysql_url, request, expected_rows=3) == "Arrow -> COPY (binary)"
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT x FROM target ORDER BY id").fetchall() == [(v,) for _, v in rows]


def test_a_tinyint_other_than_0_or_1_into_a_boolean_stops_the_load(mysql_url: str, pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL refuses '2' as a boolean in text; the binary path must refuse it too, not load true."""
    _one_column(mysql_url, pg_url, "TINYINT(1)", "boolean", [(1, 1), (2, 2)])
    request = ReadRequest(table=TableName("one"), accept=frozenset({ARROW, ROWS}), keys=("id",))
    with pytest.raises(FatalError, match="column x holds 2, which is no boolean"):
        load(pg_url, tmp_path, mysql_url, request, expected_rows=2)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM target").fetchone() == (0,)
