"""S3 end to end through the command line, against moto in server mode and the real PostgreSQL:
incremental loads by LastModified and by date partition, an output uploaded to a bucket, --check."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from textwrap import dedent

import pytest

from tests.conftest import S3Server, run_cli
from tests.contract.test_s3_connector import csv_bytes, put, wait_past


def _project(home: Path, name: str, body: str, ddl: str | None = None) -> None:
    folder = home / "customer_code" / name
    folder.mkdir(parents=True)
    (folder / "project.yml").write_text(f"project: {name}\n" + dedent(body), encoding="utf-8")
    if ddl is not None:
        (home / "warehouse" / name).mkdir(parents=True)
        (home / "warehouse" / name / "001_tables.sql").write_text(ddl, encoding="utf-8")


def _connect_lake(monkeypatch: pytest.MonkeyPatch, server: S3Server, bucket: str, prefix: str = "") -> None:
    monkeypatch.setenv("ETL_CONN_LAKE", server.url(bucket, prefix))
    monkeypatch.setenv("ETL_CONN_LAKE_ACCESS_KEY_ID", server.access_key_id)
    monkeypatch.setenv("ETL_CONN_LAKE_SECRET_ACCESS_KEY", server.secret_access_key)


def _query(pg_url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        return conn.execute(sql).fetchall()


ORDERS = """\
    connections:
      lake:
    incremental:
      initial_start: 2000-01-01
    ddl:
      - s3_orders/001_tables.sql
    tables:
      - target: orders
        source: {connection: lake, pattern: "orders/*.csv", source_columns: [_source_key]}
        strategy: append
        cursor: _source_modified
"""
ORDERS_DDL = """\
CREATE TABLE orders (order_id BIGINT, amount NUMERIC(12,2), _source_key TEXT, _source_modified TIMESTAMPTZ);
"""


def test_incremental_by_last_modified_loads_each_object_once(
    etl_home: Path, pg_url: str, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(etl_home, "s3_orders", ORDERS, ORDERS_DDL)
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    _connect_lake(monkeypatch, s3_server, s3_bucket, "landing")
    header = ["order_id", "amount"]
    put(s3_server, s3_bucket, "landing/orders/a.csv", csv_bytes(header, [(1, "10.50"), (2, "20.00")]))
    modified_b = put(s3_server, s3_bucket, "landing/orders/b.csv", csv_bytes(header, [(3, "-5.25")]))
    put(s3_server, s3_bucket, "landing/orders/readme.txt", b"not a csv")  # outside the pattern

    first = run_cli("--project", "s3_orders")
    assert first.code == 0, first.stdout + first.stderr
    assert _query(pg_url, "SELECT order_id, _source_key FROM orders ORDER BY order_id") == [
        (1, "landing/orders/a.csv"),
        (2, "landing/orders/a.csv"),
        (3, "landing/orders/b.csv"),
    ]

    wait_past(modified_b)  # S3 keeps whole seconds: C must be newer than the watermark
    modified_c = put(s3_server, s3_bucket, "landing/orders/c.csv", csv_bytes(header, [(4, "1.00"), (5, "2.00")]))
    second = run_cli("--project", "s3_orders")
    assert second.code == 0, second.stdout + second.stderr
    third = run_cli("--project", "s3_orders")
    assert third.code == 0, third.stdout + third.stderr

    rows = _query(pg_url, "SELECT order_id, amount::text, _source_key, _source_modified FROM orders ORDER BY order_id")
    assert [r[:3] for r in rows] == [
        (1, "10.50", "landing/orders/a.csv"),
        (2, "20.00", "landing/orders/a.csv"),
        (3, "-5.25", "landing/orders/b.csv"),
        (4, "1.00", "landing/orders/c.csv"),
        (5, "2.00", "landing/orders/c.csv"),
    ]
    assert rows[3][3] == modified_c
    runs = _query(
        pg_url,
        "SELECT rows, status, window_start, data_max_date, message FROM etl_task_runs "
        "WHERE task_name = 'load:orders' ORDER BY task_run_id",
    )
    assert [(r[0], r[1]) for r in runs] == [(3, "success"), (2, "success"), (0, "success")]
    assert datetime.fromisoformat(runs[0][3]) == modified_b  # the watermark is the newest object loaded
    assert datetime.fromisoformat(runs[1][2]) == modified_b  # ... and the next window starts there
    assert datetime.fromisoformat(runs[1][3]) == modified_c
    assert datetime.fromisoformat(runs[2][2]) == modified_c
    assert runs[2][3] is None and "no new data" in runs[2][4]


SALES = """\
    connections:
      lake:
    incremental:
      initial_start: 2023-12-31
    ddl:
      - s3_sales/001_tables.sql
    tables:
      - target: sales
        source: {connection: lake, pattern: "sales/dt=*/*.csv", partition: "dt={date}"}
        strategy: append
        cursor: _source_partition
"""
SALES_DDL = "CREATE TABLE sales (sale_id BIGINT, amount NUMERIC(12,2), _source_partition DATE);\n"


def test_incremental_by_date_partition_loads_new_partitions(
    etl_home: Path, pg_url: str, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(etl_home, "s3_sales", SALES, SALES_DDL)
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    _connect_lake(monkeypatch, s3_server, s3_bucket)
    header = ["sale_id", "amount"]
    put(s3_server, s3_bucket, "sales/dt=2024-01-01/part-0.csv", csv_bytes(header, [(1, "1.00")]))
    put(s3_server, s3_bucket, "sales/dt=2024-01-01/part-1.csv", csv_bytes(header, [(2, "2.00")]))
    put(s3_server, s3_bucket, "sales/dt=2024-01-02/part-0.csv", csv_bytes(header, [(3, "3.00")]))

    assert run_cli("--project", "s3_sales").code == 0
    assert _query(pg_url, "SELECT sale_id, _source_partition FROM sales ORDER BY sale_id") == [
        (1, date(2024, 1, 1)),
        (2, date(2024, 1, 1)),
        (3, date(2024, 1, 2)),
    ]

    put(s3_server, s3_bucket, "sales/dt=2024-01-03/part-0.csv", csv_bytes(header, [(4, "4.00")]))
    put(s3_server, s3_bucket, "sales/dt=2024-01-02/late.csv", csv_bytes(header, [(9, "9.00")]))  # a loaded day
    second = run_cli("--project", "s3_sales")
    assert second.code == 0, second.stdout + second.stderr
    assert _query(pg_url, "SELECT sale_id FROM sales WHERE _source_partition = '2024-01-03'") == [(4,)]
    assert _query(pg_url, "SELECT count(*) FROM sales") == [(4,)]  # a partition is read once
    runs = _query(
        pg_url, "SELECT rows, data_max_date FROM etl_task_runs WHERE task_name = 'load:sales' ORDER BY 1 DESC"
    )
    assert sorted(runs) == [(1, "2024-01-03"), (3, "2024-01-02")]

    full = run_cli("--project", "s3_sales", "--load-type", "F")  # a full reload reads every object again
    assert full.code == 0, full.stdout + full.stderr
    assert _query(pg_url, "SELECT sale_id FROM sales ORDER BY sale_id") == [(1,), (2,), (3,), (4,), (9,)]


REPORT = """\
    connections:
      lake:
    outputs:
      - name: daily_report
        query: sql/report.sql
        upload: lake
"""


def test_an_output_is_uploaded_with_the_same_bytes(
    etl_home: Path, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(etl_home, "s3_report", REPORT)  # the warehouse is the embedded SQLite file
    (etl_home / "customer_code" / "s3_report" / "sql").mkdir()
    (etl_home / "customer_code" / "s3_report" / "sql" / "report.sql").write_text(
        "SELECT 1 AS id, 'épsilon, \"quoted\"' AS label UNION ALL SELECT 2, NULL", encoding="utf-8"
    )
    _connect_lake(monkeypatch, s3_server, s3_bucket, "exports")

    result = run_cli("--project", "s3_report")
    assert result.code == 0, result.stdout + result.stderr
    [local] = (etl_home / "metadata" / "output" / "s3_report").glob("daily_report_*.csv")
    key = f"exports/s3_report/{local.name}"
    stored = s3_server.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert stored == local.read_bytes()
    assert b"quoted" in stored


def test_check_reports_ok_and_failures(
    etl_home: Path, s3_auth: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(etl_home, "s3_check", "connections:\n  lake:\n")
    _connect_lake(monkeypatch, s3_auth, s3_bucket)

    ok = run_cli("--project", "s3_check", "--check")
    assert ok.code == 0, ok.stdout + ok.stderr
    assert any(line.startswith("OK") and "lake (S3" in line and "boto3 1." in line for line in ok.stdout.splitlines())

    monkeypatch.setenv("ETL_CONN_LAKE", s3_auth.url("no-such-bucket-here"))
    missing = run_cli("--project", "s3_check", "--check")
    assert missing.code == 2
    line = next(line for line in missing.stdout.splitlines() if "lake (S3" in line)
    assert line.startswith("FAILED") and "NoSuchBucket" in line

    monkeypatch.setenv("ETL_CONN_LAKE", s3_auth.url(s3_bucket))
    monkeypatch.setenv("ETL_CONN_LAKE_SECRET_ACCESS_KEY", "not-the-right-secret-at-all")
    denied = run_cli("--project", "s3_check", "--check")
    assert denied.code == 2
    line = next(line for line in denied.stdout.splitlines() if "lake (S3" in line)
    assert line.startswith("FAILED") and "SignatureDoesNotMatch" in line and "credentials" in line
    assert "not-the-right-secret-at-all" not in denied.stdout + denied.stderr


def test_dry_run_describes_the_listing(
    etl_home: Path, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(etl_home, "s3_orders", ORDERS, ORDERS_DDL)
    _connect_lake(monkeypatch, s3_server, s3_bucket, "landing")
    result = run_cli("--project", "s3_orders", "--dry-run", "--start-date", "2024-01-01")
    assert result.code == 0, result.stdout + result.stderr
    assert f"list s3://{s3_bucket}/landing/orders/*.csv" in result.stdout
    assert "keep objects where 2024-01-01 00:00:00 < _source_modified" in result.stdout


def test_a_bad_source_option_fails_before_anything_connects(
    etl_home: Path, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(etl_home, "s3_orders", ORDERS.replace('pattern: "orders/*.csv"', 'pattern: "orders/*.txt"'), ORDERS_DDL)
    _connect_lake(monkeypatch, s3_server, s3_bucket)
    result = run_cli("--project", "s3_orders")
    assert result.code == 2
    assert "tables (orders).source.format" in result.stderr and "say format: csv or parquet" in result.stderr
