"""The BigQuery connector, driven through the real google-cloud-bigquery client over HTTP against the
local fake in tests/fakes/bigquery_server.py: the connector contract, paging, errors, credentials."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ReadRequest, TableName
from tests.conftest import REPO
from tests.contract.connector_contract import ROWS, ConnectorContract, ContractSource
from tests.fakes.bigquery_server import FakeBigQuery, connector_for, running
from utilities.errors import FatalError, TransientError

QUERY = "SELECT id, name, amount, updated_at FROM `ds`.`items` WHERE id >= :min_id ORDER BY id"


def seed(fake: FakeBigQuery, count: int | None = None) -> None:
    """``ds.items``: the contract's rows, or ``count`` generated rows."""
    fake.execute("CREATE SCHEMA IF NOT EXISTS ds")
    fake.execute("CREATE TABLE ds.items (id BIGINT, name VARCHAR, amount DECIMAL(12,2), updated_at TIMESTAMP)")
    if count is None:
        for row in ROWS:
            fake.execute("INSERT INTO ds.items VALUES (?, ?, ?, ?)", list(row))
    else:
        fake.execute(
            "INSERT INTO ds.items SELECT i, 'row ' || i, i * 1.25, TIMESTAMP '2024-01-01' + i * INTERVAL 1 HOUR "
            "FROM range(1, ?) t(i)",
            [count + 1],
        )


@pytest.fixture
def fake() -> Iterator[FakeBigQuery]:
    with running() as server:
        yield server


def request_for(
    window: Any = None, chunk_size: int = 1000, sql: str = QUERY, cursor: str = "updated_at"
) -> ReadRequest:
    return ReadRequest(
        sql=sql,
        params={"min_id": 1, "load_type": "I"},
        cursor=cursor,
        filtered=window is not None,
        window_start=window[0] if window else None,
        window_end=window[1] if window else None,
        chunk_size=chunk_size,
    )


class TestBigQueryContract(ConnectorContract):
    @pytest.fixture
    def contract(self, fake: FakeBigQuery, tmp_path: Path) -> Iterator[ContractSource]:
        seed(fake)
        connector = connector_for(fake, tmp_path)
        yield ContractSource(connector, request_for, missing=ReadRequest(table=TableName("no_such_table")))
        connector.close()


def test_reads_page_by_page_and_fetches_a_page_only_when_needed(fake: FakeBigQuery, tmp_path: Path) -> None:
    seed(fake, count=23)
    connector = connector_for(fake, tmp_path)
    with connector.read(request_for(chunk_size=5)) as stream:
        chunks = iter(stream)
        first = next(chunks)
        pages_after_first_chunk = len(fake.calls("GET", "/queries/"))
        rest = list(chunks)
    rows = [row for chunk in [first, *rest] for row in chunk]
    assert [len(chunk) for chunk in [first, *rest]] == [5, 5, 5, 5, 3]
    assert [row[0] for row in rows] == list(range(1, 24))
    pages = fake.calls("GET", "/queries/")
    assert pages_after_first_chunk <= 2  # the job's first results call, and no page beyond the first
    assert len([p for p in pages if "pageToken=" in p]) == 4  # pages 2..5 fetched one by one
    assert all("maxResults=5" in p for p in pages if "pageToken=" in p)
    connector.close()


def test_a_table_source_reads_with_a_window_on_a_timestamp_cursor(fake: FakeBigQuery, tmp_path: Path) -> None:
    fake.execute("CREATE SCHEMA ds")
    fake.execute("CREATE TABLE ds.events (id BIGINT, happened_at TIMESTAMPTZ)")
    fake.execute(
        "INSERT INTO ds.events SELECT i, TIMESTAMPTZ '2024-03-01 00:00:00+00' + i * INTERVAL 1 DAY FROM range(5) t(i)"
    )
    connector = connector_for(fake, tmp_path)
    request = ReadRequest(
        table=TableName("events"),
        cursor="happened_at",
        filtered=True,
        window_start=datetime(2024, 3, 2, tzinfo=UTC),
        window_end=datetime(2024, 3, 4),
    )
    with connector.read(request) as stream:
        rows = [row for chunk in stream for row in chunk]
    assert rows == [(2, datetime(2024, 3, 3, tzinfo=UTC)), (3, datetime(2024, 3, 4, tzinfo=UTC))]
    text = connector.describe_read(request)
    assert "SELECT * FROM `test-project`.`ds`.`events`" in text
    assert "window_start='2024-03-02 00:00:00+00:00' (STRING)" in text
    connector.close()


def test_describe_read_shows_the_sql_and_the_bound_values(fake: FakeBigQuery, tmp_path: Path) -> None:
    connector = connector_for(fake, tmp_path)
    text = connector.describe_read(request_for((datetime(2024, 1, 2, 10), datetime(2024, 1, 4, 10))))
    assert "WHERE id >= @min_id ORDER BY id\n) AS src" in text
    assert "src.`updated_at` > @window_start AND src.`updated_at` <= @window_end" in text
    assert "min_id=1 (INT64), window_start='2024-01-02 10:00:00' (STRING)" in text
    assert fake.requests == []  # nothing was called


def test_maximum_bytes_billed_is_set_on_every_query_job(fake: FakeBigQuery, tmp_path: Path) -> None:
    from utilities.errors import ConfigError

    seed(fake)
    connector = connector_for(fake, tmp_path, maximum_bytes_billed="1000000")
    with connector.read(request_for()) as stream:
        list(stream)
    (job,) = fake.jobs.values()
    assert job["configuration"]["query"]["maximumBytesBilled"] == "1000000"
    with pytest.raises(ConfigError, match="MAXIMUM_BYTES_BILLED: expected a number of bytes"):
        connector_for(fake, tmp_path, maximum_bytes_billed="10 GB").read(request_for())


def test_a_query_naming_an_unknown_parameter_fails_before_running(fake: FakeBigQuery, tmp_path: Path) -> None:
    connector = connector_for(fake, tmp_path)
    with pytest.raises(FatalError, match="unknown parameter.*start_dat"):
        connector.read(request_for(sql="SELECT 1 AS x WHERE :start_dat IS NULL"))
    assert fake.requests == []


def test_a_bad_query_is_fatal_and_names_the_connection(fake: FakeBigQuery, tmp_path: Path) -> None:
    seed(fake)
    connector = connector_for(fake, tmp_path)
    with pytest.raises(FatalError, match=r"'bq'.*query failed: 400 .*no_such_column.*check the query"):
        connector.read(request_for(sql="SELECT no_such_column FROM `ds`.`items`"))


def test_access_denied_is_fatal(fake: FakeBigQuery, tmp_path: Path) -> None:
    fake.deny = True
    connector = connector_for(fake, tmp_path)
    with pytest.raises(FatalError, match="403 Access Denied.*check the credentials"):
        connector.check()


def test_server_errors_are_transient_once_the_client_gives_up(fake: FakeBigQuery, tmp_path: Path) -> None:
    fake.fail_with = 503
    connector = connector_for(fake, tmp_path, timeout="1")
    with pytest.raises(TransientError, match="'bq'.*failed after retrying"):
        connector.check()
    assert len(fake.requests) >= 1


def test_an_unreachable_endpoint_is_transient(tmp_path: Path) -> None:
    from connectors import open_connector
    from utilities.secrets import Secret

    variables = {"ETL_CONN_BQ_API_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "ETL_CONN_BQ_TIMEOUT": "1"}
    connector = open_connector("bq", Secret("bigquery://test-project"), tmp_path, variables)
    with pytest.raises(TransientError, match="Connection refused|could not be reached|retrying"):
        connector.check()


def test_check_reports_the_project_dataset_and_driver_version(fake: FakeBigQuery, tmp_path: Path) -> None:
    from google.cloud import bigquery

    fake.execute("CREATE SCHEMA ds")
    connector = connector_for(fake, tmp_path)
    assert connector.check() == f"BigQuery test-project.ds (google-cloud-bigquery {bigquery.__version__})"
    assert fake.calls("GET", "/datasets/ds")  # the dataset was looked up
    missing = connector_for(fake, tmp_path, dataset="nope")
    with pytest.raises(FatalError, match="404 Not found: Dataset test-project:nope.*check the project"):
        missing.check()


def test_a_service_account_key_file_signs_every_call(fake: FakeBigQuery, tmp_path: Path) -> None:
    from google.auth import jwt

    fake.execute("CREATE SCHEMA ds")
    info, public_pem = _service_account(fake)
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(info), encoding="utf-8")
    connector = connector_for(fake, tmp_path, credentials_file=str(key_file))
    connector.check()
    assert len(fake.authorizations) == len(fake.requests) >= 2
    for header in set(fake.authorizations):
        claims = jwt.decode(header.removeprefix("Bearer "), certs=public_pem, verify=True)
        assert claims["iss"] == info["client_email"]


def test_credentials_json_is_a_key_and_a_bad_one_is_a_config_error(fake: FakeBigQuery, tmp_path: Path) -> None:
    from utilities.errors import ConfigError

    fake.execute("CREATE SCHEMA ds")
    good = connector_for(fake, tmp_path, credentials_json=json.dumps(_service_account(fake)[0]))
    good.check()
    assert fake.authorizations
    bad = connector_for(fake, tmp_path, credentials_json='{"type": "service_account", "private_key": "s3cr3t"}')
    with pytest.raises(ConfigError) as caught:
        bad.check()
    assert "s3cr3t" not in str(caught.value) and "CREDENTIALS_JSON" in str(caught.value)


def test_a_missing_driver_is_a_fatal_error_naming_the_requirements_file(
    fake: FakeBigQuery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = connector_for(fake, tmp_path)
    monkeypatch.setitem(sys.modules, "google.cloud.bigquery", None)
    with pytest.raises(FatalError, match="google-cloud-bigquery is not installed.*requirements-connectors.txt"):
        connector.check()


def test_the_driver_is_imported_only_on_first_use() -> None:
    code = (
        "import sys, connectors, connectors.bigquery, connectors.bigquery_load;"
        "connectors.connector_class('bigquery');"
        "print('google.cloud.bigquery' in sys.modules, 'google.api_core' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _service_account(fake: FakeBigQuery) -> tuple[dict[str, str], bytes]:
    """A service-account key made now (never a real one) and its public key in PEM.

    Its universe is not Google's: google-auth then signs its own JWTs instead of asking a token
    endpoint, and skips its regional-access-boundary lookup, a call to a Google host that this
    machine must never make.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = {
        "type": "service_account",
        "project_id": fake.project,
        "private_key_id": "test-key",
        "private_key": pem,
        "client_email": f"etl@{fake.project}.example.test",
        "client_id": "1",
        "token_uri": f"{fake.url}/token",
        "universe_domain": "fake.test",
    }
    return info, public_pem
