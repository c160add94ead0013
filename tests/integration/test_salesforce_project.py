"""A Salesforce project end to end through the command line: two incremental runs into a real
PostgreSQL warehouse (the second loads only what changed after the first run's watermark),
``--check`` OK and FAILED, and ``--dry-run`` showing the SOQL without calling Salesforce."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_cli
from tests.fakes.salesforce_server import FakeObject, FakeSalesforce, make_certificate

BASE = datetime(2024, 3, 1, 8, 30, 15, 250_000, tzinfo=UTC)

PROJECT = """\
project: sf_demo
connections:
  crm: {{}}
incremental:
  initial_start: 2024-01-01
ddl:
  - sf_demo/001_sf_account.sql
tables:
  - target: sf_account
    source:
      connection: crm
      object: Account
      fields: [Id, Name, {{AnnualRevenue: annual_revenue}}, {{IsActive__c: is_active}}, Owner.Name,
               {{SystemModstamp: system_modstamp}}]
      where: IsDeleted = false
      bulk: {bulk}
    strategy: merge
    keys: [id]
    cursor: system_modstamp
"""

DDL = """\
CREATE TABLE sf_account (
    id varchar(18) PRIMARY KEY,
    name text,
    annual_revenue numeric(18, 2),
    is_active boolean,
    owner_name text,
    system_modstamp timestamptz NOT NULL
);
"""


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("salesforce_tls"))


@pytest.fixture
def fake(certificate: tuple[Path, Path]) -> Iterator[FakeSalesforce]:
    server = FakeSalesforce(*certificate, page_size=3).start()
    server.add_object(FakeObject("User", {"Id": "id", "Name": "string"}, [{"Id": "005A", "Name": "Ada Owner"}]))
    fields = {"Id": "id", "Name": "string", "AnnualRevenue": "currency", "IsActive__c": "boolean"}
    fields |= {"OwnerId": "reference", "SystemModstamp": "datetime", "IsDeleted": "boolean"}
    accounts = [_account(n, BASE + timedelta(days=n)) for n in range(1, 8)]
    server.add_object(FakeObject("Account", fields, accounts, relationships={"Owner": ("OwnerId", "User")}))
    try:
        yield server
    finally:
        server.stop()


def _account(n: int, stamp: datetime, name: str | None = None) -> dict:
    return {
        "Id": f"001{n:015d}",
        "Name": name or f"Account {n}",
        "AnnualRevenue": n * 1000.25,
        "IsActive__c": n % 2 == 0,
        "OwnerId": "005A" if n != 4 else None,
        "SystemModstamp": stamp,
        "IsDeleted": n == 5,
    }


@pytest.fixture
def project(etl_home: Path, fake: FakeSalesforce, certificate, pg_url: str, monkeypatch: pytest.MonkeyPatch):
    def write(bulk: bool) -> Path:
        folder = etl_home / "customer_code" / "sf_demo"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "project.yml").write_text(PROJECT.format(bulk=str(bulk).lower()), encoding="utf-8")
        (etl_home / "warehouse" / "sf_demo").mkdir(parents=True, exist_ok=True)
        (etl_home / "warehouse" / "sf_demo" / "001_sf_account.sql").write_text(DDL, encoding="utf-8")
        return etl_home

    monkeypatch.setenv("ETL_CONN_WAREHOUSE", pg_url)
    monkeypatch.setenv("ETL_CONN_CRM", f"salesforce://{fake.host}?bulk_poll_seconds=0.01")
    monkeypatch.setenv("ETL_CONN_CRM_ACCESS_TOKEN", fake.token)
    monkeypatch.setenv("ETL_CONN_CRM_CA_BUNDLE", str(certificate[0]))
    return write


def _rows(pg_url: str) -> list[tuple]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT id, name, annual_revenue, is_active, owner_name, system_modstamp FROM sf_account ORDER BY id"
        ).fetchall()


def _loaded_rows(pg_url: str) -> list[int]:
    with psycopg.connect(pg_url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT rows FROM etl_task_runs WHERE task_name = 'load:sf_account' ORDER BY task_run_id"
            )
        ]


@pytest.mark.parametrize("bulk", [False, True], ids=["rest", "bulk"])
def test_two_incremental_runs_load_only_what_changed(project, fake, pg_url, bulk) -> None:
    home = project(bulk)
    first = run_cli("--project", "sf_demo")
    assert first.code == 0, first.stdout + first.stderr
    rows = _rows(pg_url)
    assert [r[0][-1] for r in rows] == ["1", "2", "3", "4", "6", "7"]  # 5 is deleted: where: keeps it out
    assert rows[0] == (
        "001000000000000001",
        "Account 1",
        Decimal("1000.25"),
        False,
        "Ada Owner",
        BASE + timedelta(days=1),
    )
    assert rows[3][4] is None  # account 4 has no owner
    assert "SystemModstamp > 2024-01-01T00:00:00Z AND SystemModstamp <= " in fake.soql[-1]

    account = fake.objects["account"]
    account.records[2] = _account(3, BASE + timedelta(days=30), name="Account 3 renamed")
    account.records.append(_account(8, BASE + timedelta(days=31)))
    second = run_cli("--project", "sf_demo")
    assert second.code == 0, second.stdout + second.stderr
    watermark = "2024-03-08T08:30:15.250Z"  # account 7, the first run's data_max_date
    assert f"WHERE (IsDeleted = false) AND SystemModstamp > {watermark} AND SystemModstamp <= " in fake.soql[-1]
    assert _loaded_rows(pg_url) == [6, 2]
    rows = _rows(pg_url)
    assert [r[0][-1] for r in rows] == ["1", "2", "3", "4", "6", "7", "8"]
    assert rows[2][1] == "Account 3 renamed" and rows[2][5] == BASE + timedelta(days=30)
    logs = "".join(p.read_text(encoding="utf-8") for p in (home / "metadata" / "logs").rglob("*.log"))
    assert fake.token not in logs + first.stdout + first.stderr + second.stdout + second.stderr


def test_check_reports_ok_then_failed_for_a_bad_session(project, fake, monkeypatch) -> None:
    project(False)
    ok = run_cli("--project", "sf_demo", "--check")
    assert ok.code == 0, ok.stdout + ok.stderr
    line = next(line for line in ok.stdout.splitlines() if "crm (Salesforce, source)" in line)
    assert line.startswith("OK") and "Salesforce API v59.0" in line

    monkeypatch.setenv("ETL_CONN_CRM_ACCESS_TOKEN", "00Dexpired!" + "x" * 20)
    failed = run_cli("--project", "sf_demo", "--check")
    assert failed.code == 2
    line = next(line for line in failed.stdout.splitlines() if "crm (Salesforce, source)" in line)
    assert line.startswith("FAILED") and "INVALID_SESSION_ID" in line and "ETL_CONN_CRM_ACCESS_TOKEN" in line
    assert "00Dexpired!" not in failed.stdout + failed.stderr


def test_dry_run_prints_the_soql_and_calls_nothing(project, fake) -> None:
    project(False)
    result = run_cli("--project", "sf_demo", "--dry-run")
    assert result.code == 0, result.stdout + result.stderr
    assert "SELECT Id, Name, AnnualRevenue, IsActive__c, Owner.Name, SystemModstamp FROM Account" in result.stdout
    assert "WHERE (IsDeleted = false) AND SystemModstamp > 2024-01-01T00:00:00Z" in result.stdout
    assert fake.requests == []


def test_a_bad_field_name_stops_at_the_factory(project, fake, etl_home) -> None:
    project(False)
    yml = etl_home / "customer_code" / "sf_demo" / "project.yml"
    yml.write_text(yml.read_text(encoding="utf-8").replace("Owner.Name", "\"Name FROM User WHERE Id != ''\""))
    result = run_cli("--project", "sf_demo")
    assert result.code == 2
    assert "is not a Salesforce field name" in result.stderr
    assert fake.requests == []
