"""MariaDB values no PostgreSQL column can hold, end to end through the command line: zero dates
(0000-00-00, 2024-00-15) and TIME beyond a day stop the run with one line naming the table, the column
and a row, on the Arrow path (connectorx) and on the row path (PyMySQL); ``zero_dates: null`` loads
zero dates as NULL instead; BIT(1) arrives as boolean, BIT(n) as an integer. And the password of a
MySQL connection may come from ETL_CONN_<NAME>_PASSWORD alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path

import pymysql
import pytest

from tests.conftest import query, run_cli
from tests.projects import write_project

# Table "orders" has no BIT column, so into PostgreSQL it takes the Arrow path; "badges" has BIT
# columns, which take the row path. Both hold the same temporal columns.
TEMPORAL = "shipped DATE, seen DATETIME(6), stamp TIMESTAMP NULL DEFAULT NULL, wait TIME"
GOOD = (1, "2024-01-15", "2024-01-15 10:00:00.250000", "2024-01-15 10:00:00", "12:30:00")
ZERO = (2, "0000-00-00", "2024-00-15 08:00:00", "0000-00-00 00:00:00", "00:00:00")
PARTLY_ZERO = (3, "2024-01-00", "2024-02-01 00:00:00", None, None)
LONG_TIME = (4, "2024-03-01", "2024-03-01 00:00:00", None, "100:00:00")
PG_TEMPORAL = "shipped DATE, seen TIMESTAMP(6), stamp TIMESTAMP, wait TIME"


def maria(url: str) -> pymysql.connections.Connection:
    database = url.rsplit("/", 1)[1]
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=database, autocommit=True)


def insert(url: str, table: str, rows: list[tuple]) -> None:
    with maria(url) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")  # lets zero dates in, as old applications did
        marks = ", ".join(["%s"] * len(rows[0]))
        cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


@pytest.fixture
def shop(mysql_url: str, pg_url: str, etl_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    with maria(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE orders (id INT PRIMARY KEY, {TEMPORAL})")
        cur.execute(f"CREATE TABLE badges (id INT PRIMARY KEY, {TEMPORAL}, active BIT(1), mask BIT(10))")
    monkeypatch.setenv("ETL_CONN_SHOP", mysql_url)
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    return mysql_url


def project(home: Path, table: str, source_extra: str = "", query_sql: str | None = None) -> None:
    source = f"query: sql/{table}.sql" if query_sql else f"table: {table}"
    bits = ", active BOOLEAN, mask INTEGER" if table == "badges" else ""
    write_project(
        home,
        "bad_values",
        f"""
        project: bad_values
        connections: {{shop: {{}}}}
        ddl: [bad_values/001.sql]
        tables:
          - {{target: {table}, source: {{connection: shop, {source}{source_extra}}}, strategy: replace, keys: [id]}}
        """,
        files={f"sql/{table}.sql": query_sql} if query_sql else None,
        ddl={"bad_values/001.sql": f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {PG_TEMPORAL}{bits});"},
    )


def one_error_line(stdout: str, stderr: str) -> str:
    """The run's error: one line, and neither a Python traceback nor a Rust panic anywhere."""
    for text in (stdout, stderr):
        assert "Traceback" not in text and "panicked" not in text and "stack backtrace" not in text, text
    lines = [line for line in stdout.splitlines() if "read failed:" in line]
    assert lines, stdout
    return lines[0]


@pytest.mark.parametrize("table", ["orders", "badges"], ids=["arrow-path", "row-path"])
@pytest.mark.parametrize(
    ("bad", "column", "value"), [(ZERO, "shipped", "0000-00-00"), (PARTLY_ZERO, "shipped", "2024-01-00")]
)
def test_a_zero_date_stops_the_run_naming_table_column_and_row(
    shop: str,
    etl_home: Path,
    pg_url: str,
    capfd: pytest.CaptureFixture[str],
    table: str,
    bad: tuple,
    column: str,
    value: str,
) -> None:
    extra = (None, None) if table == "badges" else ()
    insert(shop, table, [GOOD + extra, bad + extra])
    project(etl_home, table)

    result = run_cli("--project", "bad_values", "--load-type", "F")
    rust = capfd.readouterr()  # what native code (connectorx) wrote straight to the file descriptors

    assert result.code == 1
    line = one_error_line(result.stdout + rust.out, result.stderr + rust.err)
    assert f"table {table}, column {column} holds the zero or invalid date '{value}'" in line
    assert f"(e.g. the row with id = {bad[0]})" in line
    assert "add zero_dates: null to the table's source:" in line
    assert query(pg_url.replace("postgresql://", "postgresql+psycopg://"), f"SELECT count(*) FROM {table}") == [(0,)]


@pytest.mark.parametrize("table", ["orders", "badges"], ids=["arrow-path", "row-path"])
def test_zero_dates_null_loads_them_as_null(shop: str, etl_home: Path, pg_url: str, table: str) -> None:
    extra = (None, None) if table == "badges" else ()
    insert(shop, table, [GOOD + extra, ZERO + extra, PARTLY_ZERO + extra])
    project(etl_home, table, ", zero_dates: null")

    result = run_cli("--project", "bad_values", "--load-type", "F")

    assert result.code == 0, result.stdout + result.stderr
    path = "Arrow -> COPY" if table == "orders" else "3 rows through rows"
    assert path in result.stderr  # the path the test means to take
    rows = query(
        pg_url.replace("postgresql://", "postgresql+psycopg://"),
        f"SELECT id, shipped, seen, stamp, wait FROM {table} ORDER BY id",
    )
    assert rows == [
        (1, date(2024, 1, 15), datetime(2024, 1, 15, 10, 0, 0, 250000), datetime(2024, 1, 15, 10), time(12, 30)),
        (2, None, None, None, time(0)),
        (3, None, datetime(2024, 2, 1), None, None),
    ]


@pytest.mark.parametrize("table", ["orders", "badges"], ids=["arrow-path", "row-path"])
def test_a_time_beyond_a_day_stops_the_run_saying_how_to_read_it(
    shop: str, etl_home: Path, capfd: pytest.CaptureFixture[str], table: str
) -> None:
    extra = (None, None) if table == "badges" else ()
    insert(shop, table, [GOOD + extra, LONG_TIME + extra])
    project(etl_home, table, ", zero_dates: null")  # the option is about dates: a long TIME still stops

    result = run_cli("--project", "bad_values", "--load-type", "F")
    rust = capfd.readouterr()

    assert result.code == 1
    line = one_error_line(result.stdout + rust.out, result.stderr + rust.err)
    assert f"table {table}, column wait holds the TIME 100:00:00 (e.g. the row with id = 4)" in line
    assert "TIME_TO_SEC(wait) AS wait" in line and "CAST(wait AS CHAR) AS wait" in line


def test_a_query_is_named_when_there_is_no_table(shop: str, etl_home: Path) -> None:
    insert(shop, "orders", [GOOD, ZERO])
    project(etl_home, "orders", query_sql="SELECT id, shipped, seen, stamp, wait FROM orders -- every order")

    result = run_cli("--project", "bad_values", "--load-type", "F")

    assert result.code == 1
    line = one_error_line(result.stdout, result.stderr)
    assert "query 'SELECT id, shipped, seen, stamp, wait FROM orders', column shipped" in line


def test_bit_columns_arrive_as_boolean_and_integer(shop: str, etl_home: Path, pg_url: str) -> None:
    insert(shop, "badges", [GOOD + (1, 682), (5, *GOOD[1:], 0, 3), (6, *GOOD[1:], None, None)])
    project(etl_home, "badges")

    result = run_cli("--project", "bad_values", "--load-type", "F")

    assert result.code == 0, result.stdout + result.stderr
    rows = query(
        pg_url.replace("postgresql://", "postgresql+psycopg://"), "SELECT id, active, mask FROM badges ORDER BY id"
    )
    assert rows == [(1, True, 682), (5, False, 3), (6, None, None)]


def test_an_unknown_zero_dates_value_is_a_config_error(shop: str, etl_home: Path) -> None:
    project(etl_home, "orders", ", zero_dates: zero")
    result = run_cli("--project", "bad_values", "--dry-run")
    assert result.code == 2
    assert "tables (orders).source.zero_dates: expected null" in result.stderr + result.stdout
    project(etl_home, "orders", ", zero_date: null")
    result = run_cli("--project", "bad_values", "--dry-run")
    assert result.code == 2 and "unknown key(s) zero_date for a MySQL source" in result.stderr + result.stdout


# -- the password from ETL_CONN_<NAME>_PASSWORD ---------------------------------------------------


@pytest.fixture
def password_user(mysql_url: str) -> Iterator[tuple[str, str]]:
    """A MariaDB user with a password (and characters a URL would need escaped), allowed the test database."""
    user, password = f"etl_pw_{uuid.uuid4().hex[:8]}", f"Pw:{uuid.uuid4().hex[:12]}@/#%"
    database = mysql_url.rsplit("/", 1)[1]
    with maria(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))  # the server has skip_name_resolve
        cur.execute(f"GRANT ALL ON `{database}`.* TO %s@'%%'", (user,))
    try:
        yield user, password
    finally:
        with maria(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))


def test_the_password_setting_is_used_and_never_shown(
    shop: str, etl_home: Path, pg_url: str, password_user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    user, password = password_user
    database = shop.rsplit("/", 1)[1]
    monkeypatch.setenv("ETL_CONN_SHOP", f"mysql://{user}@127.0.0.1:3306/{database}")
    insert(shop, "orders", [GOOD])
    project(etl_home, "orders")

    without = run_cli("--project", "bad_values", "--check")
    assert without.code == 2 and "using password: NO" in without.stdout  # the user really needs it

    monkeypatch.setenv("ETL_CONN_SHOP_PASSWORD", password)
    checked = run_cli("--project", "bad_values", "--check")
    assert checked.code == 0, checked.stdout
    assert any(line.startswith("OK      shop (MySQL, source)") for line in checked.stdout.splitlines())
    loaded = run_cli("--project", "bad_values", "--load-type", "F")  # connectorx gets it too (Arrow path)
    assert loaded.code == 0, loaded.stdout + loaded.stderr
    assert query(pg_url.replace("postgresql://", "postgresql+psycopg://"), "SELECT id FROM orders") == [(1,)]

    logs = "".join(p.read_text(encoding="utf-8") for p in (etl_home / "metadata" / "logs").rglob("*.log"))
    for text in (without.stdout, without.stderr, checked.stdout, checked.stderr, loaded.stdout, loaded.stderr, logs):
        assert password not in text
