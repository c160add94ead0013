"""The Salesforce connector passes the connector contract against a local fake org (real
simple-salesforce client, real HTTPS), pages through nextRecordsUrl, runs Bulk API 2.0 jobs,
translates errors, and refuses names that could change the SOQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from connectors import open_connector
from connectors.base import ReadRequest
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_soql import soql_literal
from tests.conftest import REPO
from tests.contract.connector_contract import ROWS, WINDOW, ConnectorContract, ContractSource
from tests.fakes.salesforce_server import FakeObject, FakeSalesforce, make_certificate, resolve_salesforce_to
from utilities.errors import ConfigError, FatalError, TransientError
from utilities.secrets import Secret

ITEM_FIELDS = [{"Item_Number__c": "id"}, "Name", {"Amount__c": "amount"}, {"Updated_At__c": "updated_at"}]


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("salesforce_tls"))


@pytest.fixture
def fake(certificate: tuple[Path, Path]) -> Iterator[FakeSalesforce]:
    server = FakeSalesforce(*certificate, page_size=2).start()
    server.add_object(_items())
    _add_accounts(server)
    try:
        yield server
    finally:
        server.stop()


def _items() -> FakeObject:
    records = [
        {
            "Id": f"a00{ident:015d}",
            "Item_Number__c": float(ident),
            "Name": name,
            "Amount__c": float(amount),
            "Updated_At__c": updated.replace(tzinfo=UTC),
        }
        for ident, name, amount, updated in ROWS
    ]
    fields = {"Id": "id", "Item_Number__c": "double", "Name": "string", "Amount__c": "currency"}
    return FakeObject("Item__c", {**fields, "Updated_At__c": "datetime"}, records)


def _add_accounts(server: FakeSalesforce) -> None:
    """Users, and accounts owned by them (a relationship), with every kind of value."""
    server.add_object(
        FakeObject(
            "User",
            {"Id": "id", "Name": "string"},
            [{"Id": "005A", "Name": "Ada Owner"}, {"Id": "005B", "Name": "Bo Owner"}],
        )
    )
    base = datetime(2024, 3, 1, 8, 30, 15, 250_000, tzinfo=UTC)
    accounts = [
        {
            "Id": f"001{n:015d}",
            "Name": f"Account {n}",
            "NumberOfEmployees": n * 10,
            "AnnualRevenue": n * 1000.25,
            "IsActive__c": n % 2 == 0,
            "Founded__c": date(2000 + n, 1, n),
            "OwnerId": "005A" if n % 2 else ("005B" if n != 4 else None),
            "SystemModstamp": base + timedelta(days=n),
            "Address__c": None,
        }
        for n in range(1, 8)
    ]
    fields = {
        "Id": "id",
        "Name": "string",
        "NumberOfEmployees": "int",
        "AnnualRevenue": "currency",
        "IsActive__c": "boolean",
        "Founded__c": "date",
        "OwnerId": "reference",
        "SystemModstamp": "datetime",
        "BillingAddress": "address",
    }
    server.add_object(FakeObject("Account", fields, accounts, relationships={"Owner": ("OwnerId", "User")}))


def _connector(fake: FakeSalesforce, home: Path, certificate: Path, query: str = "", **settings: str):
    url = f"salesforce://{fake.host}?bulk_poll_seconds=0.01{query}"
    variables = {"ETL_CONN_CRM_ACCESS_TOKEN": fake.token, "ETL_CONN_CRM_CA_BUNDLE": str(certificate)}
    variables.update({f"ETL_CONN_CRM_{k.upper()}": v for k, v in settings.items()})
    return open_connector("crm", Secret(url), home, variables)


def _request(options: dict, chunk_size: int = 1000, cursor: str | None = None, window=None) -> ReadRequest:
    return ReadRequest(
        cursor=cursor,
        filtered=window is not None,
        window_start=window[0] if window else None,
        window_end=window[1] if window else None,
        chunk_size=chunk_size,
        options=options,
    )


def _read(connector, request: ReadRequest) -> tuple[list[str], list[list[tuple]]]:
    with connector.read(request) as stream:
        return stream.columns, list(stream)


ACCOUNT_FIELDS = [
    "Id",
    "Name",
    "NumberOfEmployees",
    "AnnualRevenue",
    "IsActive__c",
    "Founded__c",
    "Owner.Name",
    "SystemModstamp",
]


# -- the contract ---------------------------------------------------------------------------------


class TestSalesforceContract(ConnectorContract):
    @pytest.fixture(params=[False, True], ids=["rest", "bulk"])
    def contract(self, request, fake: FakeSalesforce, tmp_path: Path, certificate) -> ContractSource:
        connector = _connector(fake, tmp_path, certificate[0])
        options = {"object": "Item__c", "fields": ITEM_FIELDS, "bulk": request.param}

        def build(window, chunk_size):
            return _request(options, chunk_size, cursor="updated_at", window=window)

        missing = _request({"object": "Nothing__c", "fields": ["Id"]})
        return ContractSource(connector, build, missing)


# -- REST pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize(("chunk_size", "expected"), [(1, [1] * 7), (3, [3, 3, 1]), (5, [5, 2]), (50, [7])])
def test_rest_pages_are_followed_and_rechunked(fake, tmp_path, certificate, chunk_size, expected) -> None:
    fake.page_size = 2  # 7 accounts: 4 pages, the last of one record
    connector = _connector(fake, tmp_path, certificate[0])
    columns, chunks = _read(connector, _request({"object": "Account", "fields": ACCOUNT_FIELDS}, chunk_size))
    assert [len(c) for c in chunks] == expected
    assert [row[0] for chunk in chunks for row in chunk] == [f"001{n:015d}" for n in range(1, 8)]
    assert len(fake.paths("/query/01g")) == 3  # three nextRecordsUrl pages after the first
    assert columns == [
        "Id",
        "Name",
        "NumberOfEmployees",
        "AnnualRevenue",
        "IsActive__c",
        "Founded__c",
        "Owner_Name",
        "SystemModstamp",
    ]


def test_values_are_typed_and_relationships_flattened(fake, tmp_path, certificate) -> None:
    connector = _connector(fake, tmp_path, certificate[0])
    fields = [*ACCOUNT_FIELDS[:6], {"Owner.Name": "owner"}, "SystemModstamp"]
    _, chunks = _read(connector, _request({"object": "Account", "fields": fields}))
    rows = {row[0]: row for chunk in chunks for row in chunk}
    first, fourth = rows[f"001{1:015d}"], rows[f"001{4:015d}"]
    stamp = datetime(2024, 3, 2, 8, 30, 15, 250_000, tzinfo=UTC)
    assert first == (
        "001000000000000001",
        "Account 1",
        10,
        Decimal("1000.25"),
        False,
        date(2001, 1, 1),
        "Ada Owner",
        stamp,
    )
    assert fourth[6] is None  # no owner: the relationship is null
    assert fourth[4] is True and isinstance(fourth[2], int)


def test_window_on_system_modstamp_is_sent_as_utc_literals_and_ordered(fake, tmp_path, certificate) -> None:
    connector = _connector(fake, tmp_path, certificate[0])
    start = datetime(2024, 3, 3, 8, 30, 15, 250_000, tzinfo=UTC)  # account 2's stamp: excluded
    end = datetime(2024, 3, 5, 9, 30, 15, 250_000, tzinfo=UTC).astimezone()  # any zone: converted to UTC
    request = _request({"object": "Account", "fields": ACCOUNT_FIELDS}, cursor="SystemModstamp", window=(start, end))
    _, chunks = _read(connector, request)
    assert [row[0][-1] for chunk in chunks for row in chunk] == ["3", "4"]
    soql = fake.soql[-1]
    assert "WHERE SystemModstamp > 2024-03-03T08:30:15.250Z AND SystemModstamp <= 2024-03-05T09:30:15.250Z" in soql
    assert soql.endswith("ORDER BY SystemModstamp")


def test_where_condition_is_combined_with_the_window(fake, tmp_path, certificate) -> None:
    connector = _connector(fake, tmp_path, certificate[0])
    options = {"object": "Account", "fields": ["Id", "SystemModstamp"], "where": "IsActive__c = true"}
    window = (datetime(2024, 1, 1), None)  # naive means UTC; no upper bound
    _, chunks = _read(connector, _request(options, cursor="SystemModstamp", window=window))
    assert [row[0][-1] for chunk in chunks for row in chunk] == ["2", "4", "6"]
    assert "WHERE (IsActive__c = true) AND SystemModstamp > 2024-01-01T00:00:00Z ORDER BY" in fake.soql[-1]


def test_a_date_cursor_gets_date_literals(fake, tmp_path, certificate) -> None:
    connector = _connector(fake, tmp_path, certificate[0])
    window = (datetime(2002, 2, 2, 12, 0), datetime(2004, 1, 4, 0, 0))
    _, chunks = _read(
        connector, _request({"object": "Account", "fields": ["Id", "Founded__c"]}, cursor="Founded__c", window=window)
    )
    assert [row[1] for chunk in chunks for row in chunk] == [date(2003, 1, 3), date(2004, 1, 4)]
    assert "Founded__c > 2002-02-02 AND Founded__c <= 2004-01-04" in fake.soql[-1]


def test_soql_literals_come_only_from_dates() -> None:
    assert soql_literal(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05Z"
    assert soql_literal(datetime(2024, 1, 2, 3, 4, 5, 678_999, tzinfo=UTC)) == "2024-01-02T03:04:05.678Z"
    assert soql_literal(date(2024, 1, 2)) == "2024-01-02T00:00:00Z"
    assert soql_literal(date(2024, 1, 2), as_date=True) == "2024-01-02"
    with pytest.raises(FatalError):
        soql_literal("2024-01-01' OR Name != '")


# -- Bulk API 2.0 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("chunk_size", "expected"), [(2, [2, 2, 2, 1]), (3, [3, 3, 1]), (10, [7])])
def test_bulk_job_is_polled_and_its_result_pages_read(fake, tmp_path, certificate, chunk_size, expected) -> None:
    fake.bulk_polls_in_progress = 2
    connector = _connector(fake, tmp_path, certificate[0])
    options = {"object": "Account", "fields": ACCOUNT_FIELDS, "bulk": True}
    _, chunks = _read(
        connector,
        _request(options, chunk_size, cursor="SystemModstamp", window=(datetime(2024, 1, 1), datetime(2025, 1, 1))),
    )
    assert [len(c) for c in chunks] == expected
    rows = sorted(row for chunk in chunks for row in chunk)
    assert rows[0] == (
        "001000000000000001",
        "Account 1",
        10,
        Decimal("1000.25"),
        False,
        date(2001, 1, 1),
        "Ada Owner",
        datetime(2024, 3, 2, 8, 30, 15, 250_000, tzinfo=UTC),
    )
    assert rows[3][6] is None and rows[3][4] is True
    job_posts = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/jobs/query")]
    assert len(job_posts) == 1
    assert "ORDER BY" not in fake.soql[-1]  # it would switch off PK chunking
    assert "SystemModstamp > 2024-01-01T00:00:00Z AND SystemModstamp <= 2025-01-01T00:00:00Z" in fake.soql[-1]
    result_pages = [r for r in fake.requests if r.path.endswith("/results")]
    assert len(result_pages) == -(-7 // chunk_size)
    assert all(r.query["maxRecords"] == [str(chunk_size)] for r in result_pages)
    assert len(fake.paths("/jobs/query/")) >= 3  # polled while InProgress


@pytest.mark.parametrize(("threshold", "bulk_used"), [(6, True), (7, False)])
def test_bulk_auto_counts_first(fake, tmp_path, certificate, threshold, bulk_used) -> None:
    connector = _connector(fake, tmp_path, certificate[0])
    options = {"object": "Account", "fields": ["Id"], "bulk": "auto", "bulk_threshold": threshold}
    _, chunks = _read(connector, _request(options))
    assert sum(len(c) for c in chunks) == 7
    assert fake.soql[0] == "SELECT COUNT() FROM Account"
    assert bool(fake.paths("/jobs/query")) is bulk_used


def test_a_failed_bulk_job_is_fatal(fake, tmp_path, certificate) -> None:
    connector = _connector(fake, tmp_path, certificate[0])
    fake.fail("/jobs/query/", 200, {"id": "x", "state": "Failed", "errorMessage": "InvalidBatch"}, times=5)
    with pytest.raises(FatalError, match="Bulk API job did not complete.*InvalidBatch"):
        _read(connector, _request({"object": "Account", "fields": ["Id"], "bulk": True}))


# -- errors ---------------------------------------------------------------------------------------


def test_an_unknown_field_is_fatal_and_named(fake, tmp_path, certificate) -> None:
    connector = _connector(fake, tmp_path, certificate[0])
    with pytest.raises(FatalError, match="object Account has no field 'Nope__c'"):
        _read(connector, _request({"object": "Account", "fields": ["Id", "Nope__c"]}))


def test_compound_fields_and_non_date_cursors_are_refused(fake, tmp_path, certificate) -> None:
    connector = _connector(fake, tmp_path, certificate[0])
    with pytest.raises(FatalError, match="compound address field"):
        _read(connector, _request({"object": "Account", "fields": ["Id", "BillingAddress"]}))
    with pytest.raises(FatalError, match="use a datetime field"):
        _read(connector, _request({"object": "Account", "fields": ["Id", "Name"]}, cursor="Name"))
    with pytest.raises(ConfigError, match="cursor 'LastModifiedDate' is not one of the columns"):
        _read(connector, _request({"object": "Account", "fields": ["Id"]}, cursor="LastModifiedDate"))


def test_an_invalid_session_is_fatal_with_a_hint_and_no_token(fake, tmp_path, certificate) -> None:
    connector = _connector(fake, tmp_path, certificate[0], access_token="00Dwrong!tokenvalue")
    with pytest.raises(FatalError) as caught:
        connector.check()
    text = str(caught.value)
    assert "INVALID_SESSION_ID" in text and "ETL_CONN_CRM_ACCESS_TOKEN" in text
    assert "00Dwrong!tokenvalue" not in text and fake.token not in text


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]),
        (503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "down for maintenance"}]),
        (500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred"}]),
    ],
)
def test_limits_and_server_errors_are_transient(fake, tmp_path, certificate, status, body) -> None:
    connector = _connector(fake, tmp_path, certificate[0])
    fake.fail("/query/01g", status, body)  # the second page fails: the error surfaces while streaming
    with pytest.raises(TransientError, match=body[0]["errorCode"]):
        _read(connector, _request({"object": "Account", "fields": ["Id"]}))


def test_a_malformed_query_and_a_refusal_are_fatal(fake, tmp_path, certificate) -> None:
    connector = _connector(fake, tmp_path, certificate[0])
    options = {"object": "Account", "fields": ["Id"], "where": "Name LIKE"}
    with pytest.raises(FatalError, match="MALFORMED_QUERY"):
        _read(connector, _request(options))
    fake.fail("/query", 403, [{"errorCode": "INSUFFICIENT_ACCESS", "message": "no API access"}])
    with pytest.raises(FatalError, match="check the user's permissions"):
        _read(connector, _request({"object": "Account", "fields": ["Id"]}))


def test_unreachable_and_slow_servers_are_transient(fake, tmp_path, certificate) -> None:
    slow = _connector(fake, tmp_path, certificate[0], query="&timeout=0.2")
    fake.fail("/limits", 200, {}, delay=1.0)
    with pytest.raises(TransientError, match="timed out"):
        slow.check()
    slow.close()
    port = fake.port
    fake.stop()
    gone = open_connector(
        "crm", Secret(f"salesforce://127.0.0.1:{port}"), tmp_path, {"ETL_CONN_CRM_ACCESS_TOKEN": "x" * 20}
    )
    with pytest.raises(TransientError, match="unreachable"):
        gone.check()


def test_an_untrusted_certificate_is_fatal(fake, tmp_path) -> None:
    connector = open_connector(
        "crm", Secret(f"salesforce://{fake.host}"), tmp_path, {"ETL_CONN_CRM_ACCESS_TOKEN": fake.token}
    )
    with pytest.raises(FatalError, match="TLS verification failed.*CA_BUNDLE"):
        connector.check()


def test_check_reports_the_api_version_and_remaining_requests(fake, tmp_path, certificate) -> None:
    connector = _connector(fake, tmp_path, certificate[0], query="&version=58.0")
    assert connector.check() == f"Salesforce API v58.0 at {fake.host}, 14,990 of 15,000 daily API requests left"
    assert fake.paths("/limits") == ["/services/data/v58.0/limits/"]


# -- logging in (the fake answers for *.salesforce.com) -------------------------------------------


@pytest.fixture
def salesforce_dns(fake: FakeSalesforce, monkeypatch: pytest.MonkeyPatch) -> FakeSalesforce:
    """*.salesforce.com:443 resolves to the fake, as a hosts-file entry would; TLS still checks names."""
    from urllib3.util import connection

    monkeypatch.setattr(connection, "create_connection", resolve_salesforce_to(fake.port))
    fake.users["ada@acme.com"] = "pa<ss&word" + "TOKEN123"
    fake.apps["ck-acme"] = "cs-acme"
    return fake


def _login_connector(url: str, home: Path, certificate: Path, **settings: str):
    variables = {"ETL_CONN_CRM_CA_BUNDLE": str(certificate)}
    variables.update({f"ETL_CONN_CRM_{k.upper()}": v for k, v in settings.items()})
    return open_connector("crm", Secret(url), home, variables)


def test_password_and_security_token_log_in_and_read(salesforce_dns, tmp_path, certificate) -> None:
    url = "salesforce://ada%40acme.com@login.salesforce.com?version=59.0"
    connector = _login_connector(url, tmp_path, certificate[0], password="pa<ss&word", security_token="TOKEN123")
    _, chunks = _read(connector, _request({"object": "Account", "fields": ["Id"]}))
    assert sum(len(c) for c in chunks) == 7
    assert salesforce_dns.logins == ["soap:ada@acme.com"]
    assert salesforce_dns.paths("/services/Soap/u/59.0") == ["/services/Soap/u/59.0"]


def test_an_expired_session_is_renewed_by_logging_in_again(salesforce_dns, tmp_path, certificate) -> None:
    url = "salesforce://ada%40acme.com@login.salesforce.com"
    connector = _login_connector(url, tmp_path, certificate[0], password="pa<ss&word", security_token="TOKEN123")
    with connector.read(_request({"object": "Account", "fields": ["Id"]}, chunk_size=2)) as stream:
        chunks = iter(stream)
        first = next(chunks)
        salesforce_dns.expire_session()  # the next page is asked with a stale session
        rest = list(chunks)
    assert len(first) + sum(len(c) for c in rest) == 7
    assert salesforce_dns.logins == ["soap:ada@acme.com", "soap:ada@acme.com"]


def test_a_wrong_password_is_fatal_with_a_hint(salesforce_dns, tmp_path, certificate) -> None:
    url = "salesforce://ada%40acme.com@test.salesforce.com"
    connector = _login_connector(url, tmp_path, certificate[0], password="wrong-pass", security_token="TOKEN123")
    with pytest.raises(FatalError) as caught:
        connector.check()
    text = str(caught.value)
    assert "authentication failed (INVALID_LOGIN" in text and "ETL_CONN_CRM_SECURITY_TOKEN" in text
    assert "wrong-pass" not in text and "TOKEN123" not in text


def test_client_credentials_log_in_to_my_domain(salesforce_dns, tmp_path, certificate) -> None:
    connector = _login_connector(
        "salesforce://acme.my.salesforce.com",
        tmp_path,
        certificate[0],
        consumer_key="ck-acme",
        consumer_secret="cs-acme",
    )
    assert connector.check().startswith("Salesforce API v59.0 at acme.my.salesforce.com")
    assert salesforce_dns.logins == ["oauth:client_credentials"]
    bad = _login_connector(
        "salesforce://acme.my.salesforce.com", tmp_path, certificate[0], consumer_key="ck-acme", consumer_secret="no"
    )
    with pytest.raises(FatalError, match="authentication failed \\(invalid_grant"):
        bad.check()


def test_the_oauth_password_flow_appends_the_security_token(salesforce_dns, tmp_path, certificate) -> None:
    settings = {"password": "pa<ss&word", "security_token": "TOKEN123", "consumer_key": "ck-acme"}
    connector = _login_connector(
        "salesforce://ada%40acme.com@acme.my.salesforce.com",
        tmp_path,
        certificate[0],
        consumer_secret="cs-acme",
        **settings,
    )
    assert "14,990 of 15,000" in connector.check()
    assert salesforce_dns.logins == ["oauth:password"]


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"object": "Account' OR Name != '", "fields": ["Id"]},
        {"object": "Account WHERE", "fields": ["Id"]},
        {"object": "Account", "fields": ["Id, (SELECT Id FROM Contacts)"]},
        {"object": "Account", "fields": ["Name FROM User --"]},
        {"object": "Account", "fields": ["Owner.'Name'"]},
        {"object": "Account", "fields": [{"Name": "bad column"}]},
        {"object": "Account", "fields": ["Id", {"Name": "id"}]},
        {"object": "Account", "fields": []},
        {"object": "Account", "fields": ["Id"], "bulk": "yes"},
        {"object": "Account", "fields": ["Id"], "bulk_threshold": 10},
        {"object": "Account", "fields": ["Id"], "where": ""},
        {"object": "Account", "fields": ["Id"], "query": "sql/x.soql"},
        {"fields": ["Id"]},
    ],
)
def test_bad_source_options_are_config_errors(options) -> None:
    with pytest.raises(ConfigError, match="project.yml: tables"):
        SalesforceConnector.validate_source(options, "project.yml: tables (sf_account).source")


def test_an_injection_attempt_never_reaches_the_server(fake, tmp_path, certificate) -> None:
    connector = _connector(fake, tmp_path, certificate[0])
    with pytest.raises(ConfigError):
        _read(connector, _request({"object": "Account", "fields": ["Id FROM Account WHERE Name = 'x'"]}))
    assert fake.requests == []


def test_query_files_are_refused(tmp_path) -> None:
    connector = open_connector("crm", Secret("salesforce://u@login.salesforce.com"), tmp_path)
    with pytest.raises(ConfigError, match="takes object: and fields:"):
        connector.read(ReadRequest(sql="SELECT Id FROM Account", options={"object": "Account", "fields": ["Id"]}))


def test_describe_read_shows_the_soql_without_connecting(tmp_path) -> None:
    connector = open_connector("crm", Secret("salesforce://u@login.salesforce.com"), tmp_path)
    options = {"object": "Account", "fields": ["Id", "Owner.Name", "SystemModstamp"], "bulk": "auto"}
    text = connector.describe_read(_request(options, cursor="SystemModstamp", window=WINDOW))
    assert text.startswith(
        "SELECT Id, Owner.Name, SystemModstamp FROM Account "
        "WHERE SystemModstamp > 2024-01-02T10:00:00Z AND SystemModstamp <= 2024-01-04T10:00:00Z"
    )
    assert "Bulk API 2.0 query job above 100,000 rows" in text and "Owner_Name" in text
    assert connector._client is None


@pytest.mark.parametrize(
    ("url", "settings", "expected"),
    [
        (
            "salesforce://ada%40acme.com@login.salesforce.com",
            {"PASSWORD": "pw", "SECURITY_TOKEN": "tok"},
            {"username": "ada@acme.com", "password": "pw", "security_token": "tok", "domain": "login"},
        ),
        (
            "salesforce://ada@test.salesforce.com",
            {"PASSWORD": "pw"},
            {"username": "ada", "password": "pw", "security_token": "", "domain": "test"},
        ),
        (
            "salesforce://acme.my.salesforce.com",
            {"CONSUMER_KEY": "ck", "CONSUMER_SECRET": "cs"},
            {"consumer_key": "ck", "consumer_secret": "cs", "domain": "acme.my"},
        ),
        (
            "salesforce://ada@acme.my.salesforce.com",
            {"PASSWORD": "pw", "SECURITY_TOKEN": "tok", "CONSUMER_KEY": "ck", "CONSUMER_SECRET": "cs"},
            {
                "username": "ada",
                "password": "pwtok",
                "consumer_key": "ck",
                "consumer_secret": "cs",
                "domain": "acme.my",
            },
        ),
        (
            "salesforce://ada@login.salesforce.com",
            {"CONSUMER_KEY": "ck", "PRIVATE_KEY_FILE": "keys/sf.pem"},
            {"username": "ada", "consumer_key": "ck", "privatekey_file": "HOME/keys/sf.pem", "domain": "login"},
        ),
        (
            "salesforce://acme.my.salesforce.com:8443",
            {"ACCESS_TOKEN": "00D!abc"},
            {"session_id": "00D!abc", "instance_url": "https://acme.my.salesforce.com:8443"},
        ),
    ],
)
def test_login_flows_are_chosen_from_the_settings(tmp_path, url, settings, expected) -> None:
    variables = {f"ETL_CONN_CRM_{k}": v for k, v in settings.items()}
    connector = open_connector("crm", Secret(url), tmp_path, variables)
    arguments = connector.login_arguments()
    if "privatekey_file" in expected:
        expected = {**expected, "privatekey_file": str(tmp_path / "keys" / "sf.pem")}
    assert arguments == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("salesforce://ada@login.salesforce.com", "no Salesforce credentials; set ETL_CONN_CRM_PASSWORD"),
        ("salesforce://ada@example.com", "a login host must be login.salesforce.com"),
        ("salesforce://ada@login.salesforce.com?version=v59", "version must look like 59.0"),
        ("salesforce://ada@login.salesforce.com?timeout=0", "timeout must be a number of seconds > 0"),
        ("salesforce://ada@login.salesforce.com?pasword=x", "unknown URL option"),
    ],
)
def test_bad_connection_settings_are_config_errors(tmp_path, url, message) -> None:
    connector = open_connector("crm", Secret(url), tmp_path, {})
    with pytest.raises(ConfigError, match=message):
        connector.login_arguments()


def test_the_password_never_appears_in_messages(tmp_path) -> None:
    connector = open_connector("crm", Secret("salesforce://ada:Sup3rSecret@example.com"), tmp_path, {})
    with pytest.raises(ConfigError) as caught:
        connector.login_arguments()
    assert "Sup3rSecret" not in str(caught.value)


def test_the_driver_is_imported_on_first_use_only() -> None:
    code = (
        "import sys, connectors.salesforce, connectors.salesforce_soql\n"
        "from connectors import connector_class\n"
        "connector_class('salesforce')\n"
        "assert 'simple_salesforce' not in sys.modules and 'requests' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_a_missing_driver_names_the_requirements_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "simple_salesforce", None)
    connector = open_connector(
        "crm", Secret("salesforce://h.my.salesforce.com"), tmp_path, {"ETL_CONN_CRM_ACCESS_TOKEN": "t" * 10}
    )
    with pytest.raises(FatalError, match=r"simple-salesforce is not installed; run: pip install -r requirements-co"):
        connector.check()
