"""Google BigQuery through google-cloud-bigquery: reads through query jobs, writes through load jobs.

``ETL_CONN_<NAME>=bigquery://my-project/my_dataset?location=EU`` (the dataset and the location are
optional; a table named ``dataset.table`` in project.yml overrides the URL's dataset). Settings, all
optional, read from the run's merged environment:

* ``ETL_CONN_<NAME>_CREDENTIALS_FILE`` - a service-account key file (JSON);
* ``ETL_CONN_<NAME>_CREDENTIALS_JSON`` - the same key's content, for containers (a secret);
* else ``GOOGLE_APPLICATION_CREDENTIALS``, else Application Default Credentials (gcloud, metadata);
* ``ETL_CONN_<NAME>_API_ENDPOINT`` - another endpoint (an emulator or the test fake); a plain
  ``http://`` endpoint without credentials is called anonymously;
* ``ETL_CONN_<NAME>_TIMEOUT`` - seconds the client retries one failing HTTP call (default 60)
  before the runner's own retries take over;
* ``ETL_CONN_<NAME>_MAXIMUM_BYTES_BILLED`` - a query that would bill more bytes fails instead.

The driver is imported on first use, so a project that does not use BigQuery never needs it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from connectors import bigquery_sql as bq
from connectors.base import (
    Aggregate,
    Capabilities,
    Chunk,
    Connector,
    ReadRequest,
    RowStream,
    import_driver,
)
from connectors.driver_errors import Verdict, fatal, transient, translating
from utilities.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from connectors.target import LoadSession, LoadTarget

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
# Error reasons BigQuery reports for failures worth retrying (some arrive as 403 or 400).
_REQUEST_LINE = re.compile(r"^[A-Z]+ \S+: ")
TRANSIENT_REASONS = frozenset(
    {"backendError", "internalError", "rateLimitExceeded", "jobRateLimitExceeded", "badGateway", "timeout"}
)


@dataclass(frozen=True)
class Target:
    """What the URL names: the billing project, the default dataset, the jobs' location."""

    project: str
    dataset: str | None
    location: str | None


class BigQueryConnector(Connector):
    """``bigquery://project/dataset?location=EU``: a source (query jobs) and a target (load jobs)."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=True, merge=True, sql=True)
    kind: ClassVar[str] = "BigQuery"

    _client: Any = None

    # -- configuration ------------------------------------------------------------------------

    @property
    def target(self) -> Target:
        """The project, dataset and location of the URL; ConfigError when it names no project."""
        parts = urlsplit(self.url.reveal())
        project = unquote(parts.hostname or parts.netloc or "")
        if not project:
            raise ConfigError(
                f"connection {self.name!r}: {self.safe_url!r} names no project "
                f"(expected bigquery://my-project/my_dataset?location=EU)"
            )
        dataset = unquote(parts.path.strip("/")) or None
        location = parse_qs(parts.query).get("location", [None])[0]
        return Target(project, dataset, location)

    @property
    def database_name(self) -> str:
        target = self.target
        return f"{target.project}.{target.dataset}" if target.dataset else target.project

    @property
    def timeout(self) -> float:
        raw = self.setting("TIMEOUT")
        try:
            return float(raw) if raw is not None else DEFAULT_TIMEOUT
        except ValueError:
            raise ConfigError(f"ETL_CONN_{self.name.upper()}_TIMEOUT: expected seconds, got {raw!r}") from None

    @property
    def maximum_bytes_billed(self) -> int | None:
        raw = self.setting("MAXIMUM_BYTES_BILLED")
        if raw is None:
            return None
        if not raw.isdigit():
            raise ConfigError(
                f"ETL_CONN_{self.name.upper()}_MAXIMUM_BYTES_BILLED: expected a number of bytes, got {raw!r}"
            )
        return int(raw)

    def table_path(self, table: Any) -> str:
        """The quoted ```project`.`dataset`.`table``` of a project.yml table name."""
        dataset = table.schema or self.target.dataset
        if not dataset:
            raise ConfigError(
                f"connection {self.name!r}: table {table} names no dataset; write dataset.{table.name} "
                f"or add the dataset to the URL (bigquery://project/dataset)"
            )
        return bq.table_path(self.target.project, dataset, table.name)

    # -- the client ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The google-cloud-bigquery client, created on first use (this imports the driver)."""
        if self._client is None:
            bigquery = self.driver()
            from google.api_core.client_options import ClientOptions

            target = self.target
            endpoint = self.setting("API_ENDPOINT")
            with self.translate_errors("connect"):
                self._client = bigquery.Client(
                    project=target.project,
                    credentials=self._credentials(endpoint),
                    location=target.location,
                    client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
                )
        return self._client

    def _credentials(self, endpoint: str | None) -> Any:
        """A service-account key (file or JSON), anonymous for a plain-http endpoint, else None (ADC)."""
        import json

        from google.cloud import bigquery

        scopes = bigquery.Client.SCOPE
        path = self.setting("CREDENTIALS_FILE") or self.variable("GOOGLE_APPLICATION_CREDENTIALS")
        info = self.setting("CREDENTIALS_JSON")
        if info:
            from google.oauth2 import service_account

            try:
                return service_account.Credentials.from_service_account_info(json.loads(info), scopes=scopes)
            except (ValueError, KeyError) as exc:
                raise ConfigError(
                    f"ETL_CONN_{self.name.upper()}_CREDENTIALS_JSON is not a service-account key: {type(exc).__name__}"
                ) from None
        if path:
            from google.oauth2 import service_account

            try:
                return service_account.Credentials.from_service_account_file(path, scopes=scopes)
            except (OSError, ValueError, KeyError) as exc:
                raise ConfigError(
                    f"connection {self.name!r}: cannot use the service-account key file {path}: {type(exc).__name__}"
                ) from None
        if endpoint and endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        return None  # Application Default Credentials

    @property
    def retry(self) -> Any:
        """The client's retry of one HTTP call, bounded by the TIMEOUT setting."""
        return self.driver().DEFAULT_RETRY.with_timeout(self.timeout)

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    # -- errors -------------------------------------------------------------------------------

    @contextmanager
    def translate_errors(self, action: str) -> Iterator[None]:
        """Driver errors -> TransientError (retry later) or FatalError (fix something), cause kept."""
        with translating(self, action, self._classify, place=f"project {self.target.project}"):
            yield

    def _classify(self, exc: BaseException) -> Verdict | None:
        """The verdict for a client error by its HTTP status and BigQuery's reason code, or None."""
        import requests
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth

        if isinstance(exc, api.RetryError):
            cause = exc.cause if exc.cause is not None else exc
            return Verdict(TransientError, _text(cause), outcome=f"failed after retrying for {self.timeout:.0f} s")
        if isinstance(exc, api.GoogleAPICallError):
            reason = _reason(exc)
            text = f"{exc.code} {_text(exc)}" + (f" ({reason})" if reason else "")
            if isinstance(exc, api.ServerError | api.TooManyRequests) or reason in TRANSIENT_REASONS:
                return transient(text)
            return fatal(text, _hint(exc))
        if isinstance(exc, auth.DefaultCredentialsError):
            return fatal(
                "no credentials found",
                f"set ETL_CONN_{self.name.upper()}_CREDENTIALS_FILE (a service-account key file) "
                f"or GOOGLE_APPLICATION_CREDENTIALS",
            )
        if isinstance(exc, auth.RefreshError):
            text = f"the credentials were refused: {_text(exc)}"
            return transient(text) if getattr(exc, "retryable", False) else fatal(text)
        if isinstance(exc, auth.TransportError | requests.ConnectionError | requests.Timeout):
            return transient(f"the server could not be reached: {_text(exc)}")
        if isinstance(exc, concurrent.futures.TimeoutError):
            return Verdict(TransientError, f"no answer within {self.timeout:.0f} s", outcome="timed out")
        return None

    # -- reading ------------------------------------------------------------------------------

    def statement_for(self, request: ReadRequest) -> bq.Statement:
        """The query (with its parameters) that reads ``request``: the project's SQL or a table, windowed."""
        window = (request.window_start, request.window_end) if request.filtered and request.cursor else None
        if request.sql is not None:
            query, names = bq.prepare_query(request.sql)
            params = bq.bind(names, request.params, f"{self.kind} query for connection {self.name!r}")
            return bq.select_query(query, params, request.cursor, window)
        if request.table is None:
            raise ConfigError(f"{self.kind} connection {self.name!r}: a source needs query or table")
        return bq.select_table(self.table_path(request.table), request.cursor, window)

    def describe_read(self, request: ReadRequest) -> str:
        return self.statement_for(request).describe()

    def aggregate(self, request: ReadRequest, aggregates: Sequence[Aggregate]) -> dict[str, Any]:
        statement = self.statement_for(request)
        figures = ", ".join(
            "COUNT(*)" if a.column is None else f"{a.func.upper()}({bq.quote(a.column)})" for a in aggregates
        )
        wrapped = bq.Statement(f"SELECT {figures} FROM (\n{statement.sql}\n) AS etl_window", statement.parameters)
        with self.translate_errors("aggregate the source's window"):
            row = next(iter(self.run(wrapped)))
        return {a.label: value for a, value in zip(aggregates, tuple(row.values()), strict=True)}

    def read(self, request: ReadRequest) -> RowStream:
        statement = self.statement_for(request)
        with self.translate_errors("query"):
            rows = self.run(statement, page_size=request.chunk_size)
            columns = [field.name for field in rows.schema]
        return RowStream(columns, self._chunks(rows, request.chunk_size))

    def _chunks(self, rows: Any, size: int) -> Iterator[Chunk]:
        """Result pages fetched one at a time, re-cut to exactly ``size`` rows (the last may be short)."""
        pending: Chunk = []
        with self.translate_errors("read results"):
            for page in rows.pages:
                pending.extend(tuple(row.values()) for row in page)
                while len(pending) >= size:
                    yield pending[:size]
                    pending = pending[size:]
        if pending:
            yield pending

    def run(self, statement: bq.Statement, page_size: int | None = None) -> Any:
        """Run ``statement`` as a query job and wait for it; returns its RowIterator (pages of rows)."""
        bigquery = self.driver()

        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter(p.name, p.kind, p.value) for p in statement.parameters],
            use_legacy_sql=False,
        )
        config.maximum_bytes_billed = self.maximum_bytes_billed
        job = self.client.query(
            statement.sql, job_config=config, retry=self.retry, job_retry=None, timeout=self.timeout
        )
        return job.result(page_size=page_size, retry=self.retry, job_retry=None)

    # -- checking and writing -----------------------------------------------------------------

    def check(self) -> str:
        bigquery = self.driver()
        target = self.target
        with self.translate_errors("check"):
            list(self.run(bq.Statement("SELECT 1 AS ok")))
            if target.dataset:
                self.client.get_dataset(target.dataset, retry=self.retry, timeout=self.timeout)
        where = f"{target.project}.{target.dataset}" if target.dataset else target.project
        return f"BigQuery {where} (google-cloud-bigquery {bigquery.__version__})"

    def driver(self) -> Any:
        """``google.cloud.bigquery``, imported now (FatalError naming the package when it is missing)."""
        return import_driver(
            "google.cloud.bigquery", kind=self.kind, connection=self.name, package="google-cloud-bigquery"
        )

    def open_load(self, target: LoadTarget) -> AbstractContextManager[LoadSession]:
        from connectors.bigquery_load import open_load

        return open_load(self, target)


def _reason(exc: Any) -> str | None:
    try:
        return exc.errors[0].get("reason")
    except (AttributeError, IndexError, TypeError):
        return None


def _text(exc: BaseException) -> str:
    """The first line of an error's own message: BigQuery's structured message when there is one,
    without the request line ("GET https://...: ") or the job details the client appends."""
    errors = getattr(exc, "errors", None)
    message = errors[0].get("message") if errors and isinstance(errors[0], dict) else None
    message = str(message or getattr(exc, "message", None) or exc).strip()
    line = message.splitlines()[0] if message else type(exc).__name__
    return _REQUEST_LINE.sub("", line).split("; reason:")[0].strip()


def _hint(exc: Any) -> str:
    from google.api_core import exceptions as api

    if isinstance(exc, api.Unauthorized | api.Forbidden):
        return "check the credentials and the account's BigQuery roles"
    if isinstance(exc, api.NotFound):
        return "check the project, dataset and table names"
    if isinstance(exc, api.BadRequest):
        return "check the query"
    return ""
