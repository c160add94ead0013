"""The relationships check and the error_if / warn_if conditions, on real engines: the query itself on
SQLite, PostgreSQL and MariaDB, and whole runs through the command line (gates roll the load back)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from data_quality_checks.checks import evaluate
from tests.conftest import query, run_cli
from tests.projects import items_project, items_rows, sqlite_items, write_project

# ---------------------------------------------------------------- the query, on each engine


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLAlchemy URL of an empty database on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'checks.db'}"
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url").replace("postgresql://", "postgresql+psycopg://")
    return request.getfixturevalue("mysql_url").replace("mysql://", "mysql+pymysql://") + "?charset=utf8mb4"


@pytest.fixture
def statements(engine_url: str) -> Iterator[tuple[object, list[tuple[str, object]]]]:
    """A connection to ``engine_url`` with tables named by reserved words ("user", "order" with a column
    "group"), and the list of the statements it runs (with their parameters)."""
    from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, create_engine, event, insert

    engine = create_engine(engine_url)
    metadata = MetaData()
    users = Table("user", metadata, Column("id", BigInteger, primary_key=True), Column("name", String(20)))
    orders = Table(
        "order",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("group", BigInteger),  # the user it belongs to
    )
    staff = Table("staff", metadata, Column("id", Integer, primary_key=True), Column("manager_id", Integer))
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(users), [{"id": i, "name": f"u{i}"} for i in (1, 2, 3)])
        groups = [1, 2, 3, None, None, 15, 7, 12, 7, 9, 2]  # orphans: 15, 7, 12, 7, 9
        conn.execute(insert(orders), [{"id": i, "group": g} for i, g in enumerate(groups, 1)])
        conn.execute(
            insert(staff), [{"id": 1, "manager_id": None}, {"id": 2, "manager_id": 1}, {"id": 3, "manager_id": 4}]
        )
    seen: list[tuple[str, object]] = []
    event.listen(engine, "before_cursor_execute", lambda c, cur, sql, params, ctx, many: seen.append((sql, params)))
    try:
        with engine.connect() as conn:
            yield conn, seen
    finally:
        engine.dispose()


def _relationships(statements, table: str, column: str, to: str, field: str, count_checked: bool = False):
    """The outcome of relationships ``table.column`` -> ``to.field`` (``statements`` then holds its SQL only)."""
    from sqlalchemy import MetaData, Table

    conn, seen = statements
    reflect = {name: Table(name, MetaData(), autoload_with=conn) for name in {table, to}}
    seen.clear()
    return evaluate(
        conn,
        "relationships",
        {"column": column, "to": to, "field": field},
        reflect[table],
        name="rel",
        custom_sql=None,
        now=datetime.now(UTC),
        source_zone=UTC,
        reference=reflect[to],
        count_checked=count_checked,
    )


def test_relationships_counts_orphans_not_nulls_in_one_bound_query(statements) -> None:
    seen = statements[1]
    outcome = _relationships(statements, "order", "group", "user", "id", count_checked=True)
    assert outcome.failing_rows == 5  # 15, 7, 12, 7, 9; the two NULLs are not failures
    assert outcome.checked_rows == 11
    assert outcome.detail == "5 row(s) with group not found in user.id (e.g. 7, 9, 12)"
    count_sql = seen[0][0].upper()
    assert "NOT (EXISTS" in count_sql or "NOT EXISTS" in count_sql
    # the reserved words are quoted by the dialect; no value is in the SQL, nothing is bound but LIMIT
    assert '"ORDER"' in count_sql or "`ORDER`" in count_sql
    assert not any(str(v) in sql for sql, _ in seen for v in (15, 12))
    assert len(seen) == 3  # the count, the examples, the rows checked


def test_relationships_passes_when_every_value_exists(statements) -> None:
    outcome = _relationships(statements, "user", "id", "order", "group")
    assert (outcome.failing_rows, outcome.detail) == (0, "0 row(s) with id not found in order.group")


def test_relationships_on_a_table_that_references_itself(statements) -> None:
    outcome = _relationships(statements, "staff", "manager_id", "staff", "id")
    assert (outcome.failing_rows, outcome.detail) == (1, "1 row(s) with manager_id not found in staff.id (e.g. 4)")


# ---------------------------------------------------------------- whole runs through the command line

DDL = """
CREATE TABLE IF NOT EXISTS dim_customer (customer_id BIGINT PRIMARY KEY, name VARCHAR(50));
CREATE TABLE IF NOT EXISTS fact_orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT);
"""

SHOP = """
project: shop
connections:
  src:
    default: sqlite:///metadata/src.db
ddl: [shop/001_tables.sql]
tables:
  - target: dim_customer
    source: {connection: src, table: customers}
    strategy: replace
  - target: fact_orders
    source: {connection: src, table: orders}
    strategy: replace
checks:
  - {kind: relationships, table: fact_orders, column: customer_id, to: dim_customer, field: customer_id}
"""


def shop_source(home: Path, customers: list[int], orders: list[tuple[int, int | None]]) -> None:
    path = home / "metadata" / "src.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE IF EXISTS customers")
        conn.execute("DROP TABLE IF EXISTS orders")
        conn.execute("CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER)")
        conn.executemany("INSERT INTO customers VALUES (?, ?)", [(c, f"customer {c}") for c in customers])
        conn.executemany("INSERT INTO orders VALUES (?, ?)", orders)


def test_an_orphan_fails_the_run_and_its_load_rolls_back(warehouse: str, etl_home: Path) -> None:
    write_project(etl_home, "shop", SHOP, ddl={"shop/001_tables.sql": DDL})
    shop_source(etl_home, [1, 2], [(10, 1), (11, 2), (12, None)])  # a NULL is not an orphan
    first = run_cli("--project", "shop")
    assert first.code == 0, first.stdout + first.stderr
    shop_source(etl_home, [1, 2, 3], [(10, 1), (11, 2), (12, None), (13, 99), (14, 3)])
    second = run_cli("--project", "shop")
    assert second.code == 4, second.stdout + second.stderr
    assert "relationships_fact_orders (1 row(s) with customer_id not found in dim_customer.customer_id (e.g. 99))" in (
        second.stdout
    )
    # the gate's load rolled back: the fact table keeps its previous rows; the dimension before it committed
    assert query(warehouse, "SELECT order_id FROM fact_orders ORDER BY order_id") == [(10,), (11,), (12,)]
    assert query(warehouse, "SELECT count(*) FROM dim_customer") == [(3,)]
    dq = query(warehouse, "SELECT run_id, severity, status, failing_rows FROM etl_dq_results ORDER BY result_id")
    assert [row[1:] for row in dq] == [("error", "pass", 0), ("error", "fail", 1)]


def null_names(home: Path, rows: int, nulls: int) -> None:
    """``rows`` items in the source, the last ``nulls`` of them with no name."""
    data = items_rows(rows)
    sqlite_items(home / "metadata" / "src.db", [(*r[:1], None, *r[2:]) if r[0] > rows - nulls else r for r in data])


def test_error_if_a_percentage_passes_at_the_limit_and_fails_above(warehouse: str, etl_home: Path) -> None:
    items_project(
        etl_home,
        strategy="replace",
        extra="""
        checks:
          - {kind: not_null, table: items, columns: [name], error_if: ">1%"}
        """,
    )
    null_names(etl_home, 100, 1)  # 1 of 100: 1%, not above
    at_limit = run_cli("--project", "items_demo", "--load-type", "F")
    assert at_limit.code == 0, at_limit.stdout + at_limit.stderr
    null_names(etl_home, 101, 2)  # 2 of 101: 1.98%
    above = run_cli("--project", "items_demo", "--load-type", "F")
    assert above.code == 4, above.stdout + above.stderr
    assert query(warehouse, "SELECT count(*) FROM items") == [(100,)]  # rolled back
    dq = query(warehouse, "SELECT severity, status, failing_rows, detail FROM etl_dq_results ORDER BY result_id")
    assert dq == [
        ("error", "pass", 1, "1 row(s) with NULL in name (1% of 100 row(s)); error_if >1% not met"),
        ("error", "fail", 2, "2 row(s) with NULL in name (1.98% of 101 row(s)); error_if >1%"),
    ]


def test_warn_if_with_failing_rows_commits_and_exits_0(warehouse: str, etl_home: Path) -> None:
    items_project(
        etl_home,
        strategy="replace",
        extra="""
        checks:
          - {kind: not_null, table: items, columns: [name], warn_if: ">0", error_if: ">10%"}
        """,
    )
    null_names(etl_home, 20, 2)  # 10%: a warning, not an error
    result = run_cli("--project", "items_demo")
    assert result.code == 0, result.stdout + result.stderr
    assert query(warehouse, "SELECT count(*) FROM items") == [(20,)]  # committed
    dq = query(warehouse, "SELECT severity, status, failing_rows, detail FROM etl_dq_results")
    assert dq == [("warn", "fail", 2, "2 row(s) with NULL in name (10% of 20 row(s)); warn_if >0")]
    assert query(warehouse, "SELECT status FROM etl_runs") == [("success",)]


def test_a_percentage_of_an_empty_table_is_zero(warehouse: str, etl_home: Path) -> None:
    items_project(
        etl_home,
        strategy="replace",
        extra="""
        checks:
          - {kind: not_null, table: items, columns: [name], error_if: ">0%"}
          - {kind: unique, table: items, columns: [name], warn_if: "=0%"}
        """,
    )
    sqlite_items(etl_home / "metadata" / "src.db", [])
    result = run_cli("--project", "items_demo")
    assert result.code == 0, result.stdout + result.stderr
    dq = query(warehouse, "SELECT check_name, severity, status, detail FROM etl_dq_results ORDER BY check_name")
    assert dq == [
        ("not_null_items", "error", "pass", "0 row(s) with NULL in name (0% of 0 row(s))"),
        ("unique_items", "warn", "fail", "0 duplicate row(s) on name (0% of 0 row(s)); warn_if =0%"),
    ]


@pytest.mark.parametrize("condition", ["> lots", "5%%", ">-1"])
def test_a_malformed_condition_is_exit_2_with_one_line_naming_the_key(condition: str, etl_home: Path) -> None:
    items_project(
        etl_home,
        extra=f"""
        checks:
          - {{kind: not_null, table: items, columns: [name], error_if: "{condition}"}}
        """,
    )
    result = run_cli("--project", "items_demo")
    assert result.code == 2
    assert result.stderr.count("\n") == 1
    assert "project.yml: checks[0].error_if: expected a condition on the failing rows such as" in result.stderr
    assert f"got '{condition}'" in result.stderr
    assert not (etl_home / "metadata" / "warehouse.db").exists()
