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


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse(request: pytest.FixtureRequest, etl_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The warehouse of the runs, as a SQLAlchemy URL for the test's own queries: the default
    SQLite file, or a fresh database on the real PostgreSQL (set as ETL_CONN_WAREHOUSE)."""
    if request.param == "sqlite":
        return f"sqlite:///{etl_home / 'metadata' / 'warehouse.db'}"
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("ETL_CONN_WAREHOUSE", url)
    return url.replace("postgresql://", "postgresql+psycopg://")


def query(url: str, sql: str, **params: object) -> list[tuple]:
    """The rows of ``sql`` on the database at SQLAlchemy ``url``, as tuples."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


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


_S3_CLIENTS: dict[str, object] = {}


@dataclass(frozen=True)
class S3Server:
    """A moto S3 server on 127.0.0.1 that checks signatures, and the keys of a user allowed everything."""

    endpoint: str
    access_key_id: str
    secret_access_key: str

    def client(self):
        """A boto3 S3 client with the good keys, made once (making clients is slow)."""
        if "client" not in _S3_CLIENTS:
            import boto3

            session = boto3.session.Session(
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                region_name="us-east-1",
            )
            _S3_CLIENTS["client"] = session.client("s3", endpoint_url=self.endpoint)
        return _S3_CLIENTS["client"]

    def url(self, bucket: str, prefix: str = "") -> str:
        """The ETL_CONN_<NAME> URL of ``bucket`` (and ``prefix``) on this server."""
        return f"s3://{bucket}/{prefix}?region=us-east-1&endpoint_url={self.endpoint}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto in server mode (a real HTTP endpoint) and the keys of an IAM user allowed everything.

    Signatures are checked only under the ``s3_auth`` fixture: moto 5.2 miscomputes the signature of
    a listing whose prefix holds a '/', so the other tests run with its (default) open door.
    """
    import json
    import logging
    import socket

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    _S3_CLIENTS.clear()
    try:
        import boto3

        iam = boto3.session.Session(
            aws_access_key_id="setup", aws_secret_access_key="setup", region_name="us-east-1"
        ).client("iam", endpoint_url=endpoint)
        iam.create_user(UserName="etl")
        allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="etl", PolicyName="all", PolicyDocument=json.dumps(allow_all))
        key = iam.create_access_key(UserName="etl")["AccessKey"]
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        server.stop()


@pytest.fixture
def s3_auth(s3_server: S3Server) -> Iterator[S3Server]:
    """The moto server checking access keys and signatures (IAM authentication on) for one test."""
    from moto.core.authorization import enable_iam_authentication

    with enable_iam_authentication():
        yield s3_server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the moto server."""
    name = _unique("etl-test").replace("_", "-")
    s3_server.client().create_bucket(Bucket=name)
    return name


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
