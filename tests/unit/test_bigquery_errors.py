"""How the BigQuery connector translates the client's errors: retry later, or fix something."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import open_connector
from utilities.errors import EtlError, FatalError, TransientError
from utilities.secrets import Secret


def _errors() -> list[tuple[BaseException, type[EtlError], str]]:
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    def call(kind: type, reason: str, message: str = "boom") -> BaseException:
        return kind(message, errors=[{"reason": reason, "message": message}])

    return [
        (call(api.Forbidden, "accessDenied", "Access Denied: Table p:d.t"), FatalError, "403 Access Denied"),
        (call(api.Unauthorized, "authError"), FatalError, "check the credentials"),
        (call(api.NotFound, "notFound", "Not found: Table p:d.t"), FatalError, "check the project, dataset"),
        (call(api.BadRequest, "invalidQuery", "Syntax error: Unexpected end"), FatalError, "check the query"),
        (call(api.Forbidden, "rateLimitExceeded", "Exceeded rate limits"), TransientError, "rateLimitExceeded"),
        (call(api.Forbidden, "quotaExceeded", "Quota exceeded"), FatalError, "quotaExceeded"),
        (call(api.BadRequest, "backendError"), TransientError, "backendError"),
        (call(api.ServiceUnavailable, "backendError"), TransientError, "503"),
        (call(api.InternalServerError, "internalError"), TransientError, "500"),
        (call(api.TooManyRequests, "rateLimitExceeded"), TransientError, "429"),
        (api.DeadlineExceeded("deadline"), TransientError, "504"),
        (api.RetryError("gave up", cause=requests.ConnectionError("refused")), TransientError, "after retrying"),
        (requests.ConnectionError("Connection refused"), TransientError, "could not be reached"),
        (auth.TransportError("DNS"), TransientError, "could not be reached"),
        (auth.DefaultCredentialsError("none"), FatalError, "ETL_CONN_BQ_CREDENTIALS_FILE"),
        (auth.RefreshError("invalid_grant: account disabled"), FatalError, "credentials were refused"),
    ]


@pytest.mark.parametrize(("error", "expected", "fragment"), _errors(), ids=lambda v: getattr(v, "__name__", None))
def test_driver_errors_become_transient_or_fatal_naming_the_connection(
    error: BaseException, expected: type[EtlError], fragment: str, tmp_path: Path
) -> None:
    connector = open_connector("bq", Secret("bigquery://my-project/ds"), tmp_path)
    with pytest.raises(expected) as caught:
        with connector.translate_errors("query"):
            raise error
    text = str(caught.value)
    assert "BigQuery connection 'bq' (project my-project)" in text and fragment in text
    assert caught.value.__cause__ is error


def test_other_exceptions_pass_through_untouched(tmp_path: Path) -> None:
    connector = open_connector("bq", Secret("bigquery://my-project"), tmp_path)
    with pytest.raises(KeyError):
        with connector.translate_errors("query"):
            raise KeyError("a bug is not a driver error")


def test_the_url_names_project_dataset_and_location(tmp_path: Path) -> None:
    from connectors.base import TableName
    from utilities.errors import ConfigError

    connector = open_connector("bq", Secret("bigquery://my-project/sales?location=EU"), tmp_path)
    assert (connector.target.project, connector.target.dataset, connector.target.location) == (
        "my-project",
        "sales",
        "EU",
    )
    assert connector.database_name == "my-project.sales"
    assert connector.table_path(TableName("orders")) == "`my-project`.`sales`.`orders`"
    assert connector.table_path(TableName("orders", "raw")) == "`my-project`.`raw`.`orders`"
    bare = open_connector("bq", Secret("bigquery://my-project"), tmp_path)
    with pytest.raises(ConfigError, match="names no dataset"):
        bare.table_path(TableName("orders"))
    with pytest.raises(ConfigError, match="names no project"):
        _ = open_connector("bq", Secret("bigquery:///sales"), tmp_path).target
    slow = open_connector("bq", Secret("bigquery://p"), tmp_path, {"ETL_CONN_BQ_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="ETL_CONN_BQ_TIMEOUT: expected seconds"):
        _ = slow.timeout
