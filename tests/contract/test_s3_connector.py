"""The S3 connector against moto in server mode: the connector contract, CSV and Parquet objects,
object selection by LastModified and by date partition, uploads, and error translation."""

from __future__ import annotations

import csv
import gzip
import io
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors import open_connector
from connectors.base import Connector, ReadRequest
from connectors.s3 import S3Connector
from connectors.s3_source import glob_regex, in_window, parse_s3_url, source_plan
from tests.conftest import S3Server
from tests.contract.connector_contract import COLUMNS, ROWS, ConnectorContract, ContractSource
from utilities.errors import ConfigError, FatalError, TransientError
from utilities.secrets import Secret


def s3_connector(
    server: S3Server, bucket: str, home: Path, prefix: str = "raw", *, secret: str | None = None
) -> Connector:
    variables = {
        "ETL_CONN_LAKE_ACCESS_KEY_ID": server.access_key_id,
        "ETL_CONN_LAKE_SECRET_ACCESS_KEY": secret or server.secret_access_key,
    }
    return open_connector("lake", Secret(server.url(bucket, prefix)), home, variables)


def csv_bytes(header: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def read_all(connector: Connector, request: ReadRequest) -> tuple[list[str], list[tuple[Any, ...]]]:
    with connector.read(request) as stream:
        return stream.columns, [row for chunk in stream for row in chunk]


def put(server: S3Server, bucket: str, key: str, body: bytes) -> datetime:
    """Upload ``body`` and return the object's LastModified (aware UTC)."""
    client = server.client()
    client.put_object(Bucket=bucket, Key=key, Body=body)
    return client.head_object(Bucket=bucket, Key=key)["LastModified"].astimezone(UTC)


def wait_past(moment: datetime) -> None:
    """Sleep until the clock is past ``moment``'s second (S3's LastModified has whole seconds)."""
    while datetime.now(UTC) < moment + timedelta(seconds=1):
        time.sleep(0.05)


class TestS3Contract(ConnectorContract):
    @pytest.fixture
    def contract(self, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> ContractSource:
        as_text = [(i, n, a, u.isoformat(" ")) for i, n, a, u in ROWS]
        put(s3_server, s3_bucket, "raw/items_1.csv", csv_bytes(COLUMNS, as_text[:3]))
        put(s3_server, s3_bucket, "raw/items_2.csv", csv_bytes(COLUMNS, as_text[3:]))
        put(s3_server, s3_bucket, "raw/other/items_3.csv", csv_bytes(["x"], [(1,)]))  # '*' stays in its folder
        connector = s3_connector(s3_server, s3_bucket, tmp_path)

        def request(window: Any, chunk_size: int) -> ReadRequest:
            return ReadRequest(
                cursor="updated_at",
                filtered=window is not None,
                window_start=window[0] if window else None,
                window_end=window[1] if window else None,
                chunk_size=chunk_size,
                options={"pattern": "items_*.csv"},
            )

        return ContractSource(connector, request, missing=ReadRequest(options={"pattern": "nothing_*.csv"}))


# -- CSV --------------------------------------------------------------------------------------------


def test_csv_keeps_null_apart_from_empty_string(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    put(s3_server, s3_bucket, "raw/t.csv", '\ufeffid;note\n1;\n2;""\n3;"a;""b""\nc"\n'.encode())
    connector = s3_connector(s3_server, s3_bucket, tmp_path)
    columns, rows = read_all(connector, ReadRequest(options={"pattern": "t.csv", "delimiter": ";"}))
    assert columns == ["id", "note"]
    assert rows == [("1", None), ("2", ""), ("3", 'a;"b"\nc')]


def test_gzip_csv_and_a_long_header_are_read(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    header = [f"column_{i:05d}" for i in range(8000)]  # a header longer than one 64 KiB read
    rows = [tuple(str(i * n) for n in range(8000)) for i in range(3)]
    put(s3_server, s3_bucket, "raw/wide.csv.gz", gzip.compress(csv_bytes(header, rows)))
    connector = s3_connector(s3_server, s3_bucket, tmp_path)
    columns, read = read_all(connector, ReadRequest(options={"pattern": "*.csv.gz"}, chunk_size=2))
    assert columns == header
    assert read == rows


def test_a_header_only_object_has_columns_and_an_empty_object_is_fatal(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    put(s3_server, s3_bucket, "raw/header.csv", b"id,name\r\n")
    put(s3_server, s3_bucket, "raw/empty.csv", b"")
    connector = s3_connector(s3_server, s3_bucket, tmp_path)
    assert read_all(connector, ReadRequest(options={"pattern": "header.csv"})) == (["id", "name"], [])
    with pytest.raises(FatalError, match="empty.csv is empty"):
        read_all(connector, ReadRequest(options={"pattern": "empty.csv"}))


def test_objects_with_other_columns_are_a_fatal_error(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    put(s3_server, s3_bucket, "raw/a.csv", csv_bytes(["id", "name"], [(1, "x")]))
    put(s3_server, s3_bucket, "raw/b.csv", csv_bytes(["id", "label"], [(2, "y")]))
    connector = s3_connector(s3_server, s3_bucket, tmp_path)
    with pytest.raises(FatalError, match="raw/b.csv has columns"):
        read_all(connector, ReadRequest(options={"pattern": "*.csv"}))


# -- Parquet ----------------------------------------------------------------------------------------


def test_parquet_keeps_its_types(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "name": pa.array(["alpha", None, "épsilon ✓"], pa.string()),
            "amount": pa.array([Decimal("10.50"), Decimal("-5.25"), None], pa.decimal128(12, 2)),
            "ratio": pa.array([0.5, 1.25, None], pa.float64()),
            "active": pa.array([True, False, None], pa.bool_()),
            "day": pa.array([date(2024, 1, 1), date(2024, 1, 2), None], pa.date32()),
            "updated_at": pa.array(
                [datetime(2024, 1, 1, 10), datetime(2024, 1, 2, 10, 30, 0, 123456), None], pa.timestamp("us")
            ),
            "seen_at": pa.array([datetime(2024, 1, 1, 10, tzinfo=UTC), None, None], pa.timestamp("us", tz="UTC")),
            "tags": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=2)  # two row groups: read with ranged GETs
    put(s3_server, s3_bucket, "raw/items.parquet", buffer.getvalue())
    connector = s3_connector(s3_server, s3_bucket, tmp_path)
    with connector.read(ReadRequest(options={"pattern": "*.parquet"}, chunk_size=2)) as stream:
        columns = stream.columns
        chunks = list(stream)
    assert columns == table.column_names
    assert [len(c) for c in chunks] == [2, 1]
    rows = [row for chunk in chunks for row in chunk]
    assert rows[0] == (
        1,
        "alpha",
        Decimal("10.50"),
        0.5,
        True,
        date(2024, 1, 1),
        datetime(2024, 1, 1, 10),
        datetime(2024, 1, 1, 10, tzinfo=UTC),
        '["a", "b"]',
    )
    assert rows[1][:7] == (
        2,
        None,
        Decimal("-5.25"),
        1.25,
        False,
        date(2024, 1, 2),
        datetime(2024, 1, 2, 10, 30, 0, 123456),
    )
    assert rows[1][8] == "[]"
    assert rows[2] == (3, "épsilon ✓", None, None, None, None, None, None, None)


def test_parquet_is_read_a_row_group_at_a_time(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    import connectors.s3

    count = 40_000
    table = pa.table({"id": pa.array(range(count), pa.int64()), "code": [f"c{i:08d}" for i in range(count)]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=5_000, compression="none")
    size = len(buffer.getvalue())
    put(s3_server, s3_bucket, "raw/big.parquet", buffer.getvalue())
    monkeypatch.setattr(connectors.s3, "RANGE_BUFFER", 16 << 10)
    connector = s3_connector(s3_server, s3_bucket, tmp_path)
    ranges: list[int] = []
    original = connector.client.get_object

    def spy(**kwargs: Any) -> Any:
        first, last = kwargs["Range"].removeprefix("bytes=").split("-")
        ranges.append(int(last) - int(first) + 1)
        return original(**kwargs)

    monkeypatch.setattr(connector.client, "get_object", spy)
    ids = [
        row[0]
        for chunk in connector.read(ReadRequest(options={"pattern": "*.parquet"}, chunk_size=7_000))
        for row in chunk
    ]
    assert ids == list(range(count))
    assert len(ranges) > 8 and max(ranges) < size / 4  # never the whole object in one read


def test_parquet_window_on_a_data_column_filters_rows(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": [1, 2, 3], "updated_at": [datetime(2024, 1, d) for d in (1, 2, 3)]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    put(s3_server, s3_bucket, "raw/p/one.parquet", buffer.getvalue())
    connector = s3_connector(s3_server, s3_bucket, tmp_path)
    request = ReadRequest(
        cursor="updated_at",
        filtered=True,
        window_start=datetime(2024, 1, 1),
        window_end=datetime(2024, 1, 2, tzinfo=UTC),  # an aware bound compares as UTC
        options={"pattern": "**/*.parquet"},
    )
    assert [row[0] for row in read_all(connector, request)[1]] == [2]


# -- incremental by object metadata -----------------------------------------------------------------


def test_last_modified_window_selects_objects_and_adds_their_metadata(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    first = put(s3_server, s3_bucket, "raw/orders/a.csv", csv_bytes(["id"], [(1,), (2,)]))
    connector = s3_connector(s3_server, s3_bucket, tmp_path)
    wait_past(first)
    second = put(s3_server, s3_bucket, "raw/orders/b.csv", csv_bytes(["id"], [(3,)]))

    def request(start: Any, end: Any = None) -> ReadRequest:
        return ReadRequest(
            cursor="_source_modified",
            filtered=True,
            window_start=start,
            window_end=end,
            options={"pattern": "orders/*.csv", "source_columns": ["_source_key"]},
        )

    columns, rows = read_all(connector, request(datetime(2000, 1, 1)))
    assert columns == ["id", "_source_key", "_source_modified"]
    assert rows == [
        ("1", "raw/orders/a.csv", first),
        ("2", "raw/orders/a.csv", first),
        ("3", "raw/orders/b.csv", second),
    ]
    assert read_all(connector, request(first))[1] == [("3", "raw/orders/b.csv", second)]
    naive_first = first.replace(tzinfo=None)  # naive bounds are UTC
    assert read_all(connector, request(datetime(2000, 1, 1), naive_first))[1] == rows[:2]
    columns, rows = read_all(connector, request(second))  # nothing new: no rows, still the columns
    assert (columns, rows) == (["id", "_source_key", "_source_modified"], [])


def test_date_partitions_select_objects(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    for day in (1, 2, 3):
        put(s3_server, s3_bucket, f"raw/sales/year=2024/month=01/day={day:02d}/part.csv", csv_bytes(["n"], [(day,)]))
    put(s3_server, s3_bucket, "raw/sales/_SUCCESS", b"")
    connector = s3_connector(s3_server, s3_bucket, tmp_path)
    request = ReadRequest(
        cursor="_source_partition",
        filtered=True,
        window_start=date(2024, 1, 1),
        window_end=datetime(2024, 1, 3),
        options={"pattern": "sales/**/*.csv", "partition": "year={year}/month={month}/day={day}"},
    )
    columns, rows = read_all(connector, request)
    assert columns == ["n", "_source_partition"]
    assert rows == [("2", date(2024, 1, 2)), ("3", date(2024, 1, 3))]


def test_an_object_without_its_partition_is_a_fatal_error(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    put(s3_server, s3_bucket, "raw/sales/dt=2024-01-01/part.csv", csv_bytes(["n"], [(1,)]))
    put(s3_server, s3_bucket, "raw/sales/undated/part.csv", csv_bytes(["n"], [(2,)]))
    connector = s3_connector(s3_server, s3_bucket, tmp_path)
    with pytest.raises(FatalError, match="has no date partition"):
        read_all(connector, ReadRequest(options={"pattern": "sales/**/*.csv", "partition": "dt={date}"}))


# -- uploads, check and errors ----------------------------------------------------------------------


def test_put_file_uploads_the_same_bytes(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "daily.csv"
    local.write_bytes(b"day,total\n2024-01-01,10.50\n")
    connector = s3_connector(s3_server, s3_bucket, tmp_path, prefix="exports")
    assert connector.put_file(local, "demo/daily.csv") == f"s3://{s3_bucket}/exports/demo/daily.csv"
    stored = s3_server.client().get_object(Bucket=s3_bucket, Key="exports/demo/daily.csv")
    assert stored["Body"].read() == local.read_bytes()
    assert stored["ContentType"] == "text/csv"


def test_a_missing_bucket_is_fatal(s3_server: S3Server, tmp_path: Path) -> None:
    connector = s3_connector(s3_server, "no-such-bucket-here", tmp_path)
    with pytest.raises(FatalError, match="NoSuchBucket.*check the bucket name in ETL_CONN_LAKE"):
        connector.check()
    local = tmp_path / "x.csv"
    local.write_text("a\n1\n")
    with pytest.raises(FatalError, match="NoSuchBucket"):
        connector.put_file(local, "x.csv")


def test_bad_credentials_are_fatal_and_never_shown(s3_auth: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    assert "S3 bucket" in s3_connector(s3_auth, s3_bucket, tmp_path, prefix="").check()  # the real keys pass
    connector = s3_connector(s3_auth, s3_bucket, tmp_path, prefix="", secret="wrong-secret-value")
    with pytest.raises(FatalError, match="SignatureDoesNotMatch.*check the credentials") as caught:
        connector.check()
    assert "wrong-secret-value" not in str(caught.value)
    variables = {"ETL_CONN_LAKE_ACCESS_KEY_ID": "AKIANOSUCHKEY0000000", "ETL_CONN_LAKE_SECRET_ACCESS_KEY": "x" * 40}
    unknown = open_connector("lake", Secret(s3_auth.url(s3_bucket)), tmp_path, variables)
    with pytest.raises(FatalError, match="InvalidAccessKeyId.*check the credentials"):
        read_all(unknown, ReadRequest(options={"pattern": "*.csv"}))


def test_a_refused_connection_is_transient(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"s3://bucket-x?endpoint_url=http://127.0.0.1:{port}&max_attempts=1&region=us-east-1"
    variables = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret"}
    connector = open_connector("lake", Secret(url), tmp_path, variables)
    with pytest.raises(TransientError, match="reachable"):
        connector.check()


def test_a_missing_driver_names_the_requirements_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server: S3Server
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ModuleNotFoundError
    connector = s3_connector(s3_server, "any-bucket", tmp_path)
    with pytest.raises(FatalError, match="requirements-connectors.txt"):
        connector.check()


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pattern": "*.csv", "sheet": 1}, "unknown key"),
        ({"pattern": "*.txt"}, "say format: csv or parquet"),
        ({"pattern": "*.csv", "format": "xlsx"}, "expected csv or parquet"),
        ({"pattern": "*.csv", "delimiter": ";;"}, "one character"),
        ({"pattern": "*.parquet", "delimiter": ";"}, "CSV objects only"),
        ({"pattern": "*.csv", "encoding": "klingon"}, "not a known text encoding"),
        ({"pattern": "*.csv", "partition": "dt={hour}"}, "partition"),
        ({"pattern": "*.csv", "partition": "{month}/{day}"}, "needs {year}"),
        ({"pattern": "*.csv", "source_columns": ["_source_partition"]}, "needs a partition"),
        ({"pattern": "/abs/*.csv"}, "expected a glob"),
    ],
)
def test_bad_source_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        S3Connector.validate_source(options, "project.yml: tables (t).source")


def test_a_cursor_on_object_metadata_needs_what_it_reads() -> None:
    with pytest.raises(ConfigError, match="needs a partition"):
        source_plan({"pattern": "*.csv"}, "_source_partition", "t")
    with pytest.raises(ConfigError, match="not supported"):
        source_plan({"pattern": "*.csv"}, "_source_key", "t")
    assert source_plan({"pattern": "*.csv"}, "_source_modified", "t").meta == ("_source_modified",)
    assert source_plan({"pattern": "*.csv", "partition": "dt={date}", "source_columns": True}, None, "t").meta == (
        "_source_key",
        "_source_modified",
        "_source_partition",
    )


def test_the_url_carries_options_but_no_credentials() -> None:
    where = parse_s3_url("s3://my-bucket/raw/sales/?region=eu-west-1&endpoint_url=http://127.0.0.1:9000", "lake")
    assert (where.bucket, where.prefix, where.region, where.endpoint_url) == (
        "my-bucket",
        "raw/sales/",
        "eu-west-1",
        "http://127.0.0.1:9000",
    )
    assert parse_s3_url("s3://my-bucket", "lake").prefix == ""
    with pytest.raises(ConfigError, match="carries no credentials") as caught:
        parse_s3_url("s3://AKIA:topsecret@my-bucket/raw", "lake")
    assert "topsecret" not in str(caught.value)
    with pytest.raises(ConfigError, match="unknown URL option"):
        parse_s3_url("s3://my-bucket?secret_key=x", "lake")


def test_half_given_credentials_are_a_config_error(tmp_path: Path) -> None:
    connector = open_connector("lake", Secret("s3://my-bucket"), tmp_path, {"ETL_CONN_LAKE_ACCESS_KEY_ID": "AKIA1"})
    with pytest.raises(ConfigError, match="ETL_CONN_LAKE_SECRET_ACCESS_KEY is not"):
        connector.check()


def test_glob_and_window_rules() -> None:
    assert glob_regex("orders/*.csv").fullmatch("orders/a.csv")
    assert not glob_regex("orders/*.csv").fullmatch("orders/2024/a.csv")
    assert glob_regex("orders/**/*.csv").fullmatch("orders/a.csv")
    assert glob_regex("orders/**/*.csv").fullmatch("orders/2024/01/a.csv")
    assert not glob_regex("orders/?.csv").fullmatch("orders/ab.csv")
    assert in_window("2024-01-02 00:00:00", datetime(2024, 1, 1), datetime(2024, 1, 2))
    assert not in_window("2024-01-01 00:00:00", datetime(2024, 1, 1), None)
    assert in_window(date(2024, 1, 2), date(2024, 1, 1), datetime(2024, 1, 2, 5))
    assert in_window("12", 10, None) and not in_window("9", 10, None)
    assert not in_window(None, datetime(2024, 1, 1), None)
