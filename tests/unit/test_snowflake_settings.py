"""Snowflake connector without a server: the URL and settings, SQL rendering, error translation,
and the driver imported only on first use."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from connectors import open_connector
from connectors.base import ReadRequest, TableName
from connectors.snowflake import SnowflakeConnector, parse_url, translate_error
from tests.conftest import REPO
from utilities.errors import ConfigError, FatalError, TransientError
from utilities.secrets import Masker, Secret

URL = "snowflake://etl_user:p%40ss%2Fw0rd@xy12345.eu-central-1/ANALYTICS/SALES?warehouse=LOAD_WH&role=ETL_ROLE"


def connector(url: str = URL, home: Path = Path("."), **settings: str) -> SnowflakeConnector:
    variables = {f"ETL_CONN_SNOW_{k.upper()}": v for k, v in settings.items()}
    made = open_connector("snow", Secret(url), home, variables)
    assert isinstance(made, SnowflakeConnector)
    return made


def test_the_url_names_user_account_database_schema_and_options() -> None:
    parts = parse_url(URL, "snow")
    assert (parts.user, parts.account, parts.database, parts.schema) == (
        "etl_user",
        "xy12345.eu-central-1",
        "ANALYTICS",
        "SALES",
    )
    assert parts.password is not None and parts.password.reveal() == "p@ss/w0rd"
    assert dict(parts.options) == {"warehouse": "LOAD_WH", "role": "ETL_ROLE"}
    assert parse_url("snowflake://u@acct/db", "snow").schema == "PUBLIC"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("snowflake://acct/db", "user, account and database are required"),
        ("snowflake://u:secretpw@acct", "user, account and database are required"),
        ("snowflake://u:secretpw@acct/db?colour=blue", "unknown option 'colour'"),
        ("snowflake://u:secretpw@acct/db?port=https", "expects a whole number"),
    ],
)
def test_a_bad_url_is_a_config_error_that_hides_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_url(url, "snow")
    assert "secretpw" not in str(caught.value) and "ETL_CONN_SNOW" in str(caught.value)


def test_the_password_comes_from_the_url_or_the_password_setting() -> None:
    assert connector().connect_args()["password"] == "p@ss/w0rd"
    args = connector("snowflake://u@acct/db/sch", password="from-setting").connect_args()
    assert args["password"] == "from-setting"
    assert args["paramstyle"] == "qmark" and args["login_timeout"] == 30


def test_a_private_key_file_selects_key_pair_authentication(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "etl.p8").write_text("not read before connecting")
    args = connector(
        "snowflake://u@acct/db", tmp_path, private_key_file="keys/etl.p8", private_key_passphrase="phrase"
    ).connect_args()
    assert args["private_key_file"] == str(tmp_path / "keys" / "etl.p8")
    assert (args["private_key_file_pwd"], args["authenticator"]) == ("phrase", "SNOWFLAKE_JWT")
    assert "password" not in args
    with pytest.raises(ConfigError, match="PRIVATE_KEY_FILE"):
        connector("snowflake://u@acct/db", tmp_path, private_key_file="keys/missing.p8").connect_args()


def test_messages_show_the_url_without_its_password() -> None:
    made = connector()
    assert "p%40ss" not in made.safe_url and "***" in made.safe_url
    assert made.database_name == "ANALYTICS"


def test_names_from_project_yml_are_upper_cased_and_quoted() -> None:
    request = ReadRequest(
        table=TableName("order", "sales"),
        cursor="updated_at",
        filtered=True,
        window_start=datetime(2024, 1, 1),
        window_end=datetime(2024, 2, 1),
    )
    sql, values = connector().select_for(request)
    assert 'FROM "SALES"."ORDER"' in sql
    assert '"UPDATED_AT" > ?' in sql and '"UPDATED_AT" <= ?' in sql
    assert values == [datetime(2024, 1, 1), datetime(2024, 2, 1)]
    assert "datetime.datetime(2024, 2, 1, 0, 0)" in connector().describe_read(request)


def _errors():
    import snowflake.connector.errors as errors

    return errors


def _translate(exc: BaseException) -> Exception:
    return translate_error(exc, "snow", "snowflake://u:***@acct/db", "connect", Masker(["hunter22"]))


def test_a_wrong_password_is_fatal_and_says_what_to_check() -> None:
    exc = _errors().DatabaseError(
        msg="Failed to connect to DB: acct.snowflakecomputing.com:443. Incorrect username or password was specified.",
        errno=390100,
        sqlstate="28000",
    )
    error = _translate(exc)
    assert isinstance(error, FatalError)
    assert "check the user and password" in str(error) and "ETL_CONN_SNOW_PASSWORD" in str(error)


@pytest.mark.parametrize(
    "make",
    [
        lambda e: e.OperationalError(msg="Could not connect to Snowflake backend after 2 attempt(s).", errno=250001),
        lambda e: e.ServiceUnavailableError(),
        lambda e: e.TooManyRequests(),
        lambda e: e.ProgrammingError(msg="Authentication token has expired.", errno=390114),
        lambda e: ConnectionResetError("connection reset by peer"),
    ],
)
def test_network_trouble_and_expired_sessions_are_transient(make) -> None:
    assert isinstance(_translate(make(_errors())), TransientError)


@pytest.mark.parametrize(
    ("make", "shown"),
    [
        (
            lambda e: e.ProgrammingError(
                msg="SQL compilation error:\nObject 'X' does not exist or not authorized.", errno=2003
            ),
            "does not exist",
        ),
        (lambda e: e.ForbiddenError(), "check the account name"),
        (lambda e: e.ProgrammingError(msg="syntax error line 1 at position 7 unexpected 'FORM'.", errno=1003), "FORM"),
    ],
)
def test_bad_sql_missing_objects_and_a_wrong_account_are_fatal(make, shown: str) -> None:
    error = _translate(make(_errors()))
    assert isinstance(error, FatalError) and shown in str(error)


def test_a_secret_inside_a_driver_message_is_masked() -> None:
    error = _translate(_errors().ProgrammingError(msg="bad value 'hunter22' near password", errno=1003))
    assert "hunter22" not in str(error) and "***" in str(error)


def test_the_driver_is_imported_on_first_use_only() -> None:
    code = (
        "import sys; from pathlib import Path; from connectors import open_connector; "
        "from utilities.secrets import Secret; "
        "c = open_connector('snow', Secret('snowflake://u@a/db'), Path('.')); c.describe_read; "
        "assert 'snowflake.connector' not in sys.modules, 'imported too early'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_missing_driver_names_the_requirements_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snowflake.connector", None)
    with pytest.raises(FatalError, match="pip install -r requirements-connectors.txt"):
        connector().check()
