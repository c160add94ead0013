"""Salesforce as a source, through simple-salesforce: SOQL over the REST query API (pages followed
through ``nextRecordsUrl``) or the Bulk API 2.0 for large objects, windowed on a datetime field.

The connection is ``ETL_CONN_<NAME>=salesforce://user@login.salesforce.com?version=59.0``
(``test.salesforce.com`` for a sandbox, ``<domain>.my.salesforce.com`` for a My Domain). Secrets
are settings, never part of project.yml:

* ``ETL_CONN_<NAME>_PASSWORD`` and ``ETL_CONN_<NAME>_SECURITY_TOKEN`` - user name and password login;
* ``ETL_CONN_<NAME>_CONSUMER_KEY`` and ``..._CONSUMER_SECRET`` - a connected app: the OAuth
  client-credentials flow (no user in the URL) or, with a user and password, the OAuth password flow;
* ``ETL_CONN_<NAME>_CONSUMER_KEY`` and ``..._PRIVATE_KEY_FILE`` with a user - the OAuth JWT flow;
* ``ETL_CONN_<NAME>_ACCESS_TOKEN`` - an existing session id / access token; the URL's host is then
  the instance itself (``salesforce://acme.my.salesforce.com``);
* ``ETL_CONN_<NAME>_CA_BUNDLE`` - a CA file to verify the server with (a TLS-inspecting proxy).

URL query options: ``version`` (API version, default 59.0), ``timeout`` (seconds per HTTP request,
default 120) and ``bulk_poll_seconds`` (how often a Bulk API job's state is polled, default 5).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from connectors.base import Capabilities, Chunk, Connector, ReadRequest, Row, RowStream, import_driver
from connectors.driver_errors import Verdict, fatal, transient, translating
from connectors.salesforce_soql import (
    COMPOUND_TYPES,
    CURSOR_TYPES,
    SalesforceSource,
    Window,
    build_soql,
    count_soql,
    csv_converter,
    json_converter,
    parse_source,
)
from utilities.errors import ConfigError, FatalError

logger = logging.getLogger(__name__)

DEFAULT_VERSION = "59.0"
DEFAULT_TIMEOUT = 120.0
DEFAULT_BULK_POLL = 5.0
URL_OPTIONS = ("version", "timeout", "bulk_poll_seconds")
VERSION = re.compile(r"^\d{2,3}\.\d$")
LOGIN_HOST = re.compile(r"^(?P<domain>[A-Za-z0-9][A-Za-z0-9.\-]*)\.salesforce\.com$", re.IGNORECASE)
TRANSIENT_CODES = {"REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW", "QUERY_TIMEOUT"}


@dataclass(frozen=True)
class _UrlParts:
    host: str
    port: int | None
    user: str | None
    password: str | None
    version: str
    timeout: float
    bulk_poll: float


@dataclass(frozen=True)
class _Plan:
    """One read, resolved against the object's describe(): the SOQL and how to turn rows into tuples."""

    source: SalesforceSource
    paths: list[tuple[str, ...]]  # the fields with Salesforce's own spelling
    types: list[str]
    window: Window | None
    order_by: str | None

    def soql(self, ordered: bool = True) -> str:
        paths = [".".join(p) for p in self.paths]
        return build_soql(self.source.object, paths, self.source.where, self.window, self.order_by if ordered else None)


class SalesforceConnector(Connector):
    """A Salesforce org read with SOQL (REST pages or Bulk API 2.0); never a load target."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=False, sql=False)
    kind: ClassVar[str] = "Salesforce"

    _client: Any = None
    _describes: dict[str, dict[str, Any]] | None = None

    # -- configuration ------------------------------------------------------------------------

    @classmethod
    def validate_source(cls, options: Mapping[str, Any], where: str) -> None:
        parse_source(options, where)

    @property
    def parts(self) -> _UrlParts:
        """The URL, validated: host, user, API version and the request options."""
        parsed = urlsplit(self.url.reveal())
        where = f"connection {self.name!r} ({self.safe_url})"
        try:
            host, port = parsed.hostname, parsed.port
        except ValueError:
            raise ConfigError(f"{where}: the port is not a number") from None
        if not host:
            raise ConfigError(f"{where}: expected salesforce://user@login.salesforce.com?version={DEFAULT_VERSION}")
        query = parse_qs(parsed.query, keep_blank_values=True)
        unknown = set(query) - set(URL_OPTIONS)
        if unknown:
            raise ConfigError(f"{where}: unknown URL option(s) {', '.join(sorted(unknown))} (known: {URL_OPTIONS})")
        version = query.get("version", [DEFAULT_VERSION])[-1].removeprefix("v")
        if not VERSION.match(version):
            raise ConfigError(f"{where}: version must look like {DEFAULT_VERSION}, got {version!r}")
        return _UrlParts(
            host=host,
            port=port,
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            version=version,
            timeout=_seconds(query, "timeout", DEFAULT_TIMEOUT, where),
            bulk_poll=_seconds(query, "bulk_poll_seconds", DEFAULT_BULK_POLL, where),
        )

    @property
    def database_name(self) -> str:
        return self.parts.host

    def login_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``simple_salesforce.Salesforce`` for the configured login flow.

        Secret values are returned as plain strings for the driver only; never log this mapping.
        """
        parts = self.parts
        token = self.setting("ACCESS_TOKEN")
        if token:
            port = f":{parts.port}" if parts.port else ""
            return {"session_id": token, "instance_url": f"https://{parts.host}{port}"}
        domain = self._login_domain(parts)
        password = self.setting("PASSWORD") or parts.password
        key, secret = self.setting("CONSUMER_KEY"), self.setting("CONSUMER_SECRET")
        key_file = self.setting("PRIVATE_KEY_FILE")
        if key and secret and not parts.user:
            return {"consumer_key": key, "consumer_secret": secret, "domain": domain}
        if key and key_file and parts.user:
            path = Path(key_file) if Path(key_file).is_absolute() else self.home / key_file
            return {"username": parts.user, "consumer_key": key, "privatekey_file": str(path), "domain": domain}
        if parts.user and password and key and secret:
            return {
                "username": parts.user,
                "password": password + (self.setting("SECURITY_TOKEN") or ""),
                "consumer_key": key,
                "consumer_secret": secret,
                "domain": domain,
            }
        if parts.user and password:
            token_value = self.setting("SECURITY_TOKEN") or ""
            return {"username": parts.user, "password": password, "security_token": token_value, "domain": domain}
        prefix = f"ETL_CONN_{self.name.upper()}"
        raise ConfigError(
            f"connection {self.name!r} ({self.safe_url}): no Salesforce credentials; set {prefix}_PASSWORD "
            f"(and {prefix}_SECURITY_TOKEN) with a user in the URL, or {prefix}_CONSUMER_KEY and "
            f"{prefix}_CONSUMER_SECRET, or {prefix}_ACCESS_TOKEN"
        )

    def _login_domain(self, parts: _UrlParts) -> str:
        match = LOGIN_HOST.match(parts.host)
        if match is None or parts.port is not None:
            raise ConfigError(
                f"connection {self.name!r} ({self.safe_url}): a login host must be login.salesforce.com, "
                f"test.salesforce.com or <domain>.my.salesforce.com (set ACCESS_TOKEN to use any instance URL)"
            )
        return match["domain"]

    # -- the client ---------------------------------------------------------------------------

    def driver(self) -> Any:
        """The simple_salesforce module, imported now (FatalError naming the package when it is missing)."""
        return import_driver("simple_salesforce", kind=self.kind, connection=self.name, package="simple-salesforce")

    @property
    def client(self) -> Any:
        """The ``simple_salesforce.Salesforce`` client, logged in on first use."""
        if self._client is None:
            driver = self.driver()
            arguments = self.login_arguments()
            session = self._http_session()
            with self.translate_errors("log in"):
                try:
                    self._client = driver.Salesforce(
                        **arguments, version=self.parts.version, session=session, parse_float=Decimal
                    )
                except BaseException:
                    session.close()
                    raise
        return self._client

    def _http_session(self) -> Any:
        """A requests session whose every call has a timeout (and the CA bundle, when set)."""
        import requests

        session = requests.Session()
        ca_bundle = self.setting("CA_BUNDLE")
        if ca_bundle and not Path(ca_bundle).is_absolute():
            ca_bundle = str(self.home / ca_bundle)
        adapter = _adapter_class()(timeout=self.parts.timeout, verify=ca_bundle)
        session.mount("https://", adapter)
        return session

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.session.close()
        self._describes = None

    def check(self) -> str:
        parts = self.parts
        with self.translate_errors("connect"):
            limits = self.client.limits()
        text = f"Salesforce API v{parts.version} at {self.client.sf_instance}"
        daily = limits.get("DailyApiRequests") if isinstance(limits, dict) else None
        if isinstance(daily, dict) and "Remaining" in daily and "Max" in daily:
            text += f", {daily['Remaining']:,} of {daily['Max']:,} daily API requests left"
        return text

    @contextmanager
    def translate_errors(self, action: str) -> Iterator[None]:
        """simple-salesforce and requests errors -> TransientError or FatalError, keeping the cause."""
        self.driver()
        with translating(self, action, self._classify):
            yield

    def _classify(self, exc: BaseException) -> Verdict | None:
        """The verdict for a simple-salesforce or requests error by its HTTP status and Salesforce's
        error code, or None if it is not one."""
        from xml.parsers.expat import ExpatError

        import requests

        errors = self.driver().exceptions
        prefix = f"ETL_CONN_{self.name.upper()}"
        if isinstance(exc, errors.SalesforceAuthenticationFailed):
            return fatal(
                f"authentication failed ({exc.code}: {_short(exc.auth_message)})",
                f"check the user in the URL and {prefix}_PASSWORD / {prefix}_SECURITY_TOKEN "
                f"(or {prefix}_CONSUMER_KEY / _CONSUMER_SECRET)",
            )
        if isinstance(exc, errors.SalesforceError):
            return self._http_error(prefix, exc)
        if isinstance(exc, errors.SalesforceOperationError):
            return fatal(f"the Bulk API job did not complete: {_short(str(exc))}")
        if isinstance(exc, ExpatError):
            return fatal(f"the answer is not the XML Salesforce sends ({exc})", "check the host")
        if isinstance(exc, requests.exceptions.SSLError):
            return fatal(f"TLS verification failed ({type(exc).__name__})", f"check the host, or {prefix}_CA_BUNDLE")
        if isinstance(exc, requests.ConnectionError | requests.Timeout):
            return transient(f"{type(exc).__name__}: the server is unreachable or timed out")
        if isinstance(exc, requests.RequestException):
            return fatal(f"{type(exc).__name__}: {_short(str(exc))}")
        return None

    def _http_error(self, prefix: str, exc: Any) -> Verdict:
        code, message = _error_detail(exc.content)
        detail = f"HTTP {exc.status} {code}: {message}" if code else f"HTTP {exc.status}: {message}"
        if exc.status == 401:
            return fatal(
                f"authentication failed - the session is invalid or expired ({detail})",
                f"renew {prefix}_ACCESS_TOKEN or check {prefix}_PASSWORD / {prefix}_SECURITY_TOKEN",
            )
        if code in TRANSIENT_CODES or exc.status in (429, 503) or exc.status >= 500:
            return transient(detail, "retry later")
        if exc.status == 403:
            return fatal(f"refused ({detail})", "check the user's permissions and API access")
        if exc.status == 404:
            return fatal(f"not found ({detail})", "check the object name and the API version")
        return fatal(detail, "check object:, fields: and where: in project.yml")

    # -- reading ------------------------------------------------------------------------------

    def source_of(self, request: ReadRequest) -> SalesforceSource:
        if request.sql is not None or request.table is not None:
            raise ConfigError(
                f"connection {self.name!r}: a Salesforce source takes object: and fields: (SOQL is built from "
                f"them), not query: or table:"
            )
        return parse_source(request.options, f"source of connection {self.name!r}")

    def describe_read(self, request: ReadRequest) -> str:
        source = self.source_of(request)
        window = _window(source, request, as_date=False)
        cursor = source.cursor_field(request.cursor).soql if request.cursor else None
        soql = build_soql(source.object, [f.soql for f in source.fields], source.where, window, None)
        rest = f"REST query pages, ORDER BY {cursor}" if cursor else "REST query pages"
        if source.bulk == "auto":
            api = f"{rest}, or a Bulk API 2.0 query job above {source.bulk_threshold:,} rows (bulk: auto)"
        else:
            api = "a Bulk API 2.0 query job" if source.bulk else rest
        return f"{soql}\n-- via {api}; columns: {', '.join(source.columns)}"

    def read(self, request: ReadRequest) -> RowStream:
        source = self.source_of(request)
        with self.translate_errors(f"describe {source.object}"):
            plan = self._plan(source, request)
        columns = source.columns
        size = request.chunk_size
        if self._use_bulk(plan):
            chunks = self._guarded(f"Bulk API query of {source.object}", _rechunk(self._bulk_rows(plan, size), size))
        else:
            chunks = self._guarded(f"query of {source.object}", _rechunk(self._rest_rows(plan), size))
        return RowStream(columns, chunks, close=chunks.close)

    def _guarded(self, action: str, chunks: Iterator[Chunk]) -> Generator[Chunk, None, None]:
        with self.translate_errors(action):
            yield from chunks

    def _plan(self, source: SalesforceSource, request: ReadRequest) -> _Plan:
        resolved = [self._resolve(source.object, spec.path) for spec in source.fields]
        paths = [path for path, _ in resolved]
        types = [sf_type for _, sf_type in resolved]
        window = None
        order_by = None
        if request.cursor:
            index = source.fields.index(source.cursor_field(request.cursor))
            if types[index] not in CURSOR_TYPES:
                raise FatalError(
                    f"{self.kind} connection {self.name!r}: the cursor {request.cursor!r} is field "
                    f"{'.'.join(paths[index])} of type {types[index]}; use a datetime field such as SystemModstamp "
                    f"or LastModifiedDate"
                )
            order_by = ".".join(paths[index])
            window = _window(source, request, as_date=types[index] == "date", cursor=order_by)
        return _Plan(source, paths, types, window, order_by)

    def _resolve(self, obj: str, path: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
        """Salesforce's spelling of ``path`` from ``obj`` and the type of its last field."""
        spelled: list[str] = []
        for part in path[:-1]:
            field = self._field(obj, part, relationship=True)
            spelled.append(field["relationshipName"])
            obj = field["referenceTo"][0]
        field = self._field(obj, path[-1], relationship=False)
        if field["type"] in COMPOUND_TYPES:
            raise FatalError(
                f"{self.kind} connection {self.name!r}: {obj}.{field['name']} is a compound {field['type']} field; "
                f"list its components instead (e.g. BillingStreet, BillingCity)"
            )
        return (*spelled, field["name"]), field["type"]

    def _field(self, obj: str, name: str, relationship: bool) -> dict[str, Any]:
        key = "relationshipName" if relationship else "name"
        for field in self._describe(obj).get("fields", []):
            if str(field.get(key) or "").lower() == name.lower() and (not relationship or field.get("referenceTo")):
                return field
        what = "relationship" if relationship else "field"
        raise FatalError(
            f"{self.kind} connection {self.name!r}: object {obj} has no {what} {name!r}; check fields: in project.yml"
        )

    def _describe(self, obj: str) -> dict[str, Any]:
        if self._describes is None:
            self._describes = {}
        if obj not in self._describes:
            try:
                self._describes[obj] = self.client.restful(f"sobjects/{obj}/describe/")
            except self.driver().exceptions.SalesforceResourceNotFound as exc:
                raise FatalError(
                    f"{self.kind} connection {self.name!r}: object {obj!r} does not exist or is not visible to "
                    f"this user; check object: in project.yml"
                ) from exc
        return self._describes[obj]

    def _use_bulk(self, plan: _Plan) -> bool:
        bulk = plan.source.bulk
        if bulk != "auto":
            return bool(bulk)
        with self.translate_errors(f"count {plan.source.object}"):
            total = self.client.query(count_soql(plan.source.object, plan.source.where, plan.window))["totalSize"]
        use = total > plan.source.bulk_threshold
        logger.info("%s: %s rows in the window; reading with %s", plan.source.object, total, _api_name(use))
        return use

    def _rest_rows(self, plan: _Plan) -> Iterator[Row]:
        """Every record of the REST query, page by page through ``nextRecordsUrl``."""
        convert = [json_converter(t) for t in plan.types]
        client = self.client
        result = client.query(plan.soql())
        pages = 1
        while True:
            for record in result["records"]:
                yield _flatten(record, plan.paths, convert)
            next_url = result.get("nextRecordsUrl")
            if result.get("done", True) or not next_url:
                break
            result = client.query_more(next_url, identifier_is_url=True)
            pages += 1
        logger.debug("%s: read %d page(s) through the REST query API", plan.source.object, pages)

    def _bulk_rows(self, plan: _Plan, page_size: int) -> Iterator[Row]:
        """Every row of a Bulk API 2.0 query job, one CSV result page (``maxRecords``) at a time."""
        convert = [csv_converter(t) for t in plan.types]
        wanted = [".".join(p).lower() for p in plan.paths]
        job = getattr(self.client.bulk2, plan.source.object)
        pages = job.query(plan.soql(ordered=False), max_records=page_size, wait=self.parts.bulk_poll)
        for page in pages:
            reader = csv.reader(io.StringIO(page))
            header = next(reader, None)
            if not header:
                continue
            positions = _positions(header, wanted, plan.source.object)
            for cells in reader:
                yield tuple(fn(cells[i]) for fn, i in zip(convert, positions, strict=True))


def _adapter_class() -> type:
    """A requests adapter that gives every call a timeout and, when set, a CA bundle.

    Setting ``verify`` on the adapter (not the session) keeps it even when REQUESTS_CA_BUNDLE is set.
    """
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        def __init__(self, timeout: float, verify: str | None) -> None:
            super().__init__()
            self._timeout = timeout
            self._verify = verify

        def send(
            self,
            request: Any,
            stream: bool = False,
            timeout: float | tuple[float | None, float | None] | None = None,
            verify: bool | str = True,
            cert: str | tuple[str, str] | None = None,
            proxies: dict[str, str] | None = None,
        ) -> Any:
            timeout = self._timeout if timeout is None else timeout
            verify = self._verify or verify
            return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)

    return TimeoutAdapter


def _seconds(query: Mapping[str, list[str]], key: str, default: float, where: str) -> float:
    if key not in query:
        return default
    try:
        value = float(query[key][-1])
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{where}: {key} must be a number of seconds > 0, got {query[key][-1]!r}")
    return value


def _window(source: SalesforceSource, request: ReadRequest, as_date: bool, cursor: str | None = None) -> Window | None:
    if not (request.filtered and request.cursor):
        return None
    return Window(cursor or source.cursor_field(request.cursor).soql, request.window_start, request.window_end, as_date)


def _flatten(record: Mapping[str, Any], paths: list[tuple[str, ...]], convert: list[Callable | None]) -> Row:
    """A REST record as a tuple in the order of ``paths``; a missing parent gives NULL."""
    values = []
    for path, fn in zip(paths, convert, strict=True):
        value: Any = record
        for part in path:
            value = _get(value, part) if isinstance(value, Mapping) else None
        values.append(fn(value) if fn is not None and value is not None else value)
    return tuple(values)


def _get(record: Mapping[str, Any], key: str) -> Any:
    if key in record:
        return record[key]
    lowered = key.lower()
    return next((v for k, v in record.items() if k.lower() == lowered), None)


def _positions(header: list[str], wanted: list[str], obj: str) -> list[int]:
    lowered = [h.lower() for h in header]
    missing = [w for w in wanted if w not in lowered]
    if missing:
        raise FatalError(f"Bulk API result for {obj} has no column(s) {', '.join(missing)} (header: {header})")
    return [lowered.index(w) for w in wanted]


def _rechunk(rows: Iterable[Row], size: int) -> Iterator[Chunk]:
    chunk: Chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _error_detail(content: Any) -> tuple[str, str]:
    """(errorCode, message) from a Salesforce error body: a list of {errorCode, message} or text."""
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        first = content[0]
        return str(first.get("errorCode", "")), _short(str(first.get("message", "")))
    if isinstance(content, Mapping):
        return str(content.get("errorCode", content.get("error", ""))), _short(str(content.get("message", content)))
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    return "", _short(str(content))


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _api_name(bulk: bool) -> str:
    return "the Bulk API 2.0" if bulk else "the REST query API"
