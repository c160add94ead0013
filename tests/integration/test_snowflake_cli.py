"""Snowflake through the command line: a SQLite source loaded into fakesnow with target_connection,
audited in the SQLite warehouse; ``--check`` against fakesnow and against a login that is refused."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors import open_connector
from connectors.snowflake import SnowflakeConnector
from tests.conftest import run_cli
from utilities.errors import FatalError, TransientError
from utilities.secrets import Secret

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")

PROJECT = """
project: snow_demo
connections:
  src:
    default: sqlite:///metadata/snow_demo/source.db
  snow:
incremental:
  initial_start: 2024-01-01
tables:
  - target: orders
    target_connection: snow
    source: {connection: src, query: sql/orders.sql}
    strategy: merge
    keys: [order_id]
    cursor: updated_at
"""
SOURCE_ROWS = [
    (1, "ada", "10.50", "2024-01-05 10:00:00"),
    (2, "bob", "20.00", "2024-01-06 11:00:00"),
    (3, "cy", "0.99", "2024-01-07 12:00:00"),
]


def snowflake_rows(url: str, home: Path) -> list[tuple]:
    connector = open_connector("snow", Secret(url), home)
    conn = connector.connect()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT order_id, customer, amount, updated_at FROM orders ORDER BY order_id")
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        conn.close()


@pytest.fixture
def snow_project(etl_home: Path, snowflake_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The snow_demo project, its SQLite source, and the target table in fakesnow (ETL_CONN_SNOW)."""
    folder = etl_home / "customer_code" / "snow_demo"
    (folder / "sql").mkdir(parents=True)
    (folder / "project.yml").write_text(PROJECT, encoding="utf-8")
    (folder / "sql" / "orders.sql").write_text("SELECT order_id, customer, amount, updated_at FROM orders\n")
    (etl_home / "metadata" / "snow_demo").mkdir()
    with sqlite3.connect(etl_home / "metadata" / "snow_demo" / "source.db") as db:
        db.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer TEXT, amount TEXT, updated_at TEXT)")
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", SOURCE_ROWS)
    connector = open_connector("snow", Secret(snowflake_url), etl_home)
    assert isinstance(connector, SnowflakeConnector)
    conn = connector.connect()
    conn.cursor().execute(
        "CREATE TABLE orders (order_id NUMBER(38,0), customer VARCHAR, amount NUMBER(12,2), updated_at TIMESTAMP_NTZ)"
    )
    conn.close()
    monkeypatch.setenv("ETL_CONN_SNOW", snowflake_url)
    return etl_home


def test_a_full_then_an_incremental_run_load_snowflake_and_audit_in_the_warehouse(
    snow_project: Path, snowflake_url: str
) -> None:
    first = run_cli("--project", "snow_demo", "--load-type", "F")
    assert first.code == 0, first.stdout + first.stderr
    assert snowflake_rows(snowflake_url, snow_project) == [
        (1, "ada", Decimal("10.50"), datetime(2024, 1, 5, 10)),
        (2, "bob", Decimal("20.00"), datetime(2024, 1, 6, 11)),
        (3, "cy", Decimal("0.99"), datetime(2024, 1, 7, 12)),
    ]

    with sqlite3.connect(snow_project / "metadata" / "snow_demo" / "source.db") as db:
        db.execute("UPDATE orders SET amount = '25.00', updated_at = '2024-01-08 09:00:00' WHERE order_id = 2")
        db.execute("INSERT INTO orders VALUES (4, 'dee', '4.40', '2024-01-08 10:00:00')")
    second = run_cli("--project", "snow_demo")
    assert second.code == 0, second.stdout + second.stderr
    assert snowflake_rows(snowflake_url, snow_project) == [
        (1, "ada", Decimal("10.50"), datetime(2024, 1, 5, 10)),
        (2, "bob", Decimal("25.00"), datetime(2024, 1, 8, 9)),
        (3, "cy", Decimal("0.99"), datetime(2024, 1, 7, 12)),
        (4, "dee", Decimal("4.40"), datetime(2024, 1, 8, 10)),
    ]

    with sqlite3.connect(snow_project / "metadata" / "warehouse.db") as db:
        audit = db.execute(
            "SELECT task_name, status, strategy, rows, window_start, data_max_date FROM etl_task_runs "
            "WHERE task_kind = 'load' ORDER BY task_run_id"
        ).fetchall()
    assert [row[:4] for row in audit] == [
        ("load:orders", "success", "replace", 3),
        ("load:orders", "success", "merge", 2),
    ]
    assert audit[1][4].startswith("2024-01-07") and audit[1][5].startswith("2024-01-08")  # watermark advanced


def test_check_reports_the_snowflake_version(snow_project: Path) -> None:
    result = run_cli("--project", "snow_demo", "--check")
    assert result.code == 0, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.split()[1:2] == ["snow"])
    assert line.startswith("OK") and "(Snowflake, connection)" in line and "Snowflake 10.0.0" in line
    assert "any-password" not in result.stdout and ":***@" in line


@pytest.fixture
def refusing_login() -> Iterator[int]:
    """An HTTP server on 127.0.0.1 answering every login as Snowflake does for a wrong password.

    fakesnow accepts any password, so this stands in for the one answer it cannot give; the real
    driver parses it and raises its own error, as it would against Snowflake.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server calls
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            message = "Incorrect username or password was specified."
            body = json.dumps({"data": None, "code": "390100", "success": False, "message": message}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_check_fails_with_a_hint_when_the_password_is_refused(
    snow_project: Path, refusing_login: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"snowflake://fake:wrongpass123@fakesnow/DB/PUBLIC?host=127.0.0.1&port={refusing_login}&protocol=http"
    monkeypatch.setenv("ETL_CONN_SNOW", url)
    result = run_cli("--project", "snow_demo", "--check")
    assert result.code == 2
    line = next(line for line in result.stdout.splitlines() if line.split()[1:2] == ["snow"])
    assert line.startswith("FAILED") and "Incorrect username or password" in line
    assert "check the user and password" in line
    assert "wrongpass123" not in result.stdout + result.stderr


def test_a_refused_connection_is_transient(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    url = f"snowflake://u:pw@acct/DB?host=127.0.0.1&port={port}&protocol=http"
    connector = open_connector("snow", Secret(url), tmp_path, {"ETL_CONNECT_TIMEOUT": "2"})
    with pytest.raises(TransientError, match="'snow'.*connect failed"):
        connector.check()


def _write_key(path: Path, passphrase: bytes) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
    )


def test_key_pair_authentication_reads_an_encrypted_key(snowflake_url: str, tmp_path: Path) -> None:
    """fakesnow does not verify the signed token; this proves the key file and passphrase are used."""
    _write_key(tmp_path / "etl_key.p8", b"open sesame")
    url = snowflake_url.replace("etl_test:any-password@", "etl_test@")
    settings = {"ETL_CONN_SNOW_PRIVATE_KEY_FILE": "etl_key.p8", "ETL_CONN_SNOW_PRIVATE_KEY_PASSPHRASE": "open sesame"}
    good = open_connector("snow", Secret(url), tmp_path, settings)
    assert good.check() == "Snowflake 10.0.0"
    good.close()
    wrong = {**settings, "ETL_CONN_SNOW_PRIVATE_KEY_PASSPHRASE": "not it"}
    with pytest.raises(FatalError, match="could not read the private key") as caught:
        open_connector("snow", Secret(url), tmp_path, wrong).check()
    assert "not it" not in str(caught.value)


def test_an_incremental_append_into_snowflake_is_idempotent_by_window(snow_project: Path, snowflake_url: str) -> None:
    """Snowflake commits on its own and the table's state is written in the warehouse after: a run that
    died in between leaves the old watermark, and the next run loads the same window again. An append
    there is therefore applied as delete_insert, so that window does not arrive twice."""
    project = snow_project / "customer_code" / "snow_demo" / "project.yml"
    project.write_text(PROJECT.replace("strategy: merge", "strategy: append"), encoding="utf-8")
    assert run_cli("--project", "snow_demo", "--load-type", "F").code == 0
    with sqlite3.connect(snow_project / "metadata" / "warehouse.db") as db:
        (old_watermark,) = db.execute("SELECT watermark FROM etl_table_state WHERE target_table = 'orders'").fetchone()
    with sqlite3.connect(snow_project / "metadata" / "snow_demo" / "source.db") as db:
        db.execute("INSERT INTO orders VALUES (4, 'dee', '4.40', '2024-01-08 10:00:00')")
    assert run_cli("--project", "snow_demo").code == 0
    with sqlite3.connect(snow_project / "metadata" / "warehouse.db") as db:
        (strategy,) = db.execute("SELECT strategy FROM etl_task_runs ORDER BY task_run_id DESC LIMIT 1").fetchone()
        # as if the run had died after Snowflake's commit, before the state was written
        db.execute("UPDATE etl_table_state SET watermark = ? WHERE target_table = 'orders'", (old_watermark,))

    again = run_cli("--project", "snow_demo")

    assert again.code == 0, again.stderr
    assert strategy == "delete_insert"
    assert [row[0] for row in snowflake_rows(snowflake_url, snow_project)] == [1, 2, 3, 4]
