"""A local HTTPS server speaking the parts of the Salesforce REST and Bulk API 2.0 that the connector
uses: the SOAP login and the OAuth token endpoint, versions, limits, sobject describe, SOQL queries
paged through nextRecordsUrl, and Bulk API 2.0 query jobs with CSV results paged by Sforce-Locator.
Pages are small so that pagination is exercised.

It understands just enough SOQL: ``SELECT a, b.c FROM Obj [WHERE x > lit AND (y = lit) ...]
[ORDER BY f [ASC|DESC]]`` and ``SELECT COUNT() FROM ...``. Every request is recorded (``requests``,
``soql``) so tests can assert the pages fetched and the WHERE clause sent. TLS uses a self-signed
certificate made by :func:`make_certificate`; the real simple-salesforce client talks to it.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

VERSION = "59.0"
SOQL = re.compile(
    r"^\s*SELECT\s+(?P<select>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>[\w.]+)(?:\s+(?P<direction>ASC|DESC))?)?\s*$",
    re.IGNORECASE | re.DOTALL,
)
TERM = re.compile(r"^(?P<field>[\w.]+)\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<value>.+)$", re.DOTALL)
DATETIME_LITERAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:\d{2})$")
DATE_LITERAL = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SOAP_NAMESPACES = (
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" '
    'xmlns:sf="urn:fault.partner.soap.sforce.com"'
)


class SoqlError(Exception):
    """A query the fake (like Salesforce) refuses: answered with HTTP 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class FakeObject:
    """An sObject: its fields (name -> Salesforce type), relationships and records."""

    name: str
    fields: dict[str, str]
    records: list[dict[str, Any]] = field(default_factory=list)
    #: relationshipName -> (reference field, referenced object), e.g. Owner -> (OwnerId, User)
    relationships: dict[str, tuple[str, str]] = field(default_factory=dict)

    def field_name(self, name: str) -> str | None:
        return next((f for f in self.fields if f.lower() == name.lower()), None)

    def relationship(self, name: str) -> str | None:
        return next((r for r in self.relationships if r.lower() == name.lower()), None)

    def describe(self) -> dict[str, Any]:
        fields = [
            {"name": name, "type": sf_type, "relationshipName": None, "referenceTo": []}
            for name, sf_type in self.fields.items()
        ]
        for rel, (ref_field, target) in self.relationships.items():
            for entry in fields:
                if entry["name"] == ref_field:
                    entry.update(relationshipName=rel, referenceTo=[target])
        return {"name": self.name, "fields": fields}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]


@dataclass
class Failure:
    path_contains: str
    status: int
    body: Any
    times: int = 1
    delay: float = 0.0


class FakeSalesforce:
    """The fake org. ``start()`` it, point the connector at ``instance_url`` with ``token``."""

    def __init__(self, certificate: Path, key: Path, page_size: int = 2, bulk_polls_in_progress: int = 1) -> None:
        self.token = "00Dfake!" + uuid.uuid4().hex
        #: user name -> password followed by the security token (SOAP login, OAuth password flow)
        self.users: dict[str, str] = {}
        #: connected apps: consumer key -> consumer secret (OAuth client credentials)
        self.apps: dict[str, str] = {}
        #: the instance a login sends the client to (tests resolve *.salesforce.com to this server)
        self.instance = "acme.my.salesforce.com"
        self.logins: list[str] = []
        self.objects: dict[str, FakeObject] = {}
        self.page_size = page_size
        self.bulk_polls_in_progress = bulk_polls_in_progress
        self.requests: list[Recorded] = []
        self.soql: list[str] = []
        self._failures: list[Failure] = []
        self._cursors: dict[str, tuple[FakeObject, list[tuple[str, ...]], list[dict[str, Any]]]] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(certificate, key)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up -------------------------------------------------------------------------------

    def add_object(self, obj: FakeObject) -> FakeObject:
        self.objects[obj.name.lower()] = obj
        return obj

    def fail(self, path_contains: str, status: int, body: Any, times: int = 1, delay: float = 0.0) -> None:
        """Answer the next ``times`` requests whose path contains ``path_contains`` with an error."""
        self._failures.append(Failure(path_contains, status, body, times, delay))

    def expire_session(self) -> None:
        """Invalidate the current session: the next call gets 401 INVALID_SESSION_ID."""
        self.token = "00Dfake!" + uuid.uuid4().hex

    def start(self) -> FakeSalesforce:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        server.block_on_close = False
        server.socket = self._context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def paths(self, contains: str) -> list[str]:
        """The paths of the recorded requests that contain ``contains``."""
        return [r.path for r in self.requests if contains in r.path]

    # -- routing ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes) -> tuple:
        """(status, content type, body bytes, extra headers) for one request."""
        with self._lock:
            self.requests.append(Recorded(method, path, query))
            failure = next((f for f in self._failures if f.path_contains in path and f.times > 0), None)
            if failure is not None:
                failure.times -= 1
        if failure is not None:
            time.sleep(failure.delay)
            return _json(failure.status, failure.body)
        if method == "POST" and path.startswith("/services/Soap/u/"):
            return self._soap_login(body.decode("utf-8"))
        if method == "POST" and path == "/services/oauth2/token":
            return self._token_login(parse_qs(body.decode("utf-8")), headers.get("Authorization", ""))
        if headers.get("Authorization") != f"Bearer {self.token}":
            return _json(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        if path.rstrip("/") == "/services/data":
            return _json(200, [{"label": "Winter '24", "url": f"/services/data/v{VERSION}", "version": VERSION}])
        match = re.match(r"^/services/data/v(\d+\.\d)/(.*?)/?$", path)
        if not match:
            return _json(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
        rest = match[2]
        try:
            return self._route(method, rest, query, body)
        except SoqlError as exc:
            return _json(400, [{"message": exc.message, "errorCode": exc.code}])

    def _route(self, method: str, rest: str, query: dict[str, list[str]], body: bytes) -> tuple:
        if rest == "limits":
            return _json(200, {"DailyApiRequests": {"Max": 15000, "Remaining": 14990}})
        if match := re.fullmatch(r"sobjects/(\w+)/describe", rest):
            obj = self.objects.get(match[1].lower())
            if obj is None:
                return _json(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
            return _json(200, obj.describe())
        if rest == "query" and method == "GET":
            return self._query(query["q"][0])
        if match := re.fullmatch(r"query/(\w+)-(\d+)", rest):
            return self._page(match[1], int(match[2]))
        if rest == "jobs/query" and method == "POST":
            return self._create_job(json.loads(body))
        if match := re.fullmatch(r"jobs/query/(\w+)", rest):
            return self._job_state(match[1])
        if match := re.fullmatch(r"jobs/query/(\w+)/results", rest):
            return self._job_results(match[1], query)
        return _json(404, [{"errorCode": "NOT_FOUND", "message": f"no resource {rest}"}])

    # -- logins ---------------------------------------------------------------------------------

    def _soap_login(self, envelope: str) -> tuple:
        user = html.unescape(_element(envelope, "username"))
        password = html.unescape(_element(envelope, "password"))
        self.logins.append(f"soap:{user}")
        if self.users.get(user) != password:
            fault = (
                f"<soapenv:Envelope {_SOAP_NAMESPACES}><soapenv:Body><soapenv:Fault>"
                "<faultcode>INVALID_LOGIN</faultcode>"
                "<detail><sf:LoginFault><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>"
                "Invalid username, password, security token; or user locked out.</sf:exceptionMessage>"
                "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
            )
            return 500, "text/xml", fault.encode("utf-8"), {}
        result = (
            f"<soapenv:Envelope {_SOAP_NAMESPACES}><soapenv:Body><loginResponse><result>"
            f"<serverUrl>https://{self.instance}/services/Soap/u/{VERSION}/00D000000000001</serverUrl>"
            f"<sessionId>{self.token}</sessionId></result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )
        return 200, "text/xml", result.encode("utf-8"), {}

    def _token_login(self, form: dict[str, list[str]], authorization: str) -> tuple:
        grant = form.get("grant_type", [""])[0]
        self.logins.append(f"oauth:{grant}")
        if grant == "client_credentials" and authorization.startswith("Basic "):
            key, _, secret = base64.b64decode(authorization[6:]).decode("utf-8").partition(":")
            ok = self.apps.get(key) == secret
        elif grant == "password":
            key, secret = form["client_id"][0], form["client_secret"][0]
            ok = self.apps.get(key) == secret and self.users.get(form["username"][0]) == form["password"][0]
        else:
            ok = False
        if not ok:
            return _json(400, {"error": "invalid_grant", "error_description": "authentication failure"})
        return _json(200, {"access_token": self.token, "instance_url": f"https://{self.instance}"})

    # -- REST query -----------------------------------------------------------------------------

    def _query(self, soql: str) -> tuple:
        self.soql.append(soql)
        obj, paths, rows = self.run_soql(soql)
        if paths is None:  # SELECT COUNT()
            return _json(200, {"totalSize": len(rows), "done": True, "records": []})
        locator = "01g" + uuid.uuid4().hex[:15]
        self._cursors[locator] = (obj, paths, rows)
        return self._page(locator, 0)

    def _page(self, locator: str, offset: int) -> tuple:
        if locator not in self._cursors:
            return _json(400, [{"errorCode": "INVALID_QUERY_LOCATOR", "message": "invalid query locator"}])
        obj, paths, rows = self._cursors[locator]
        page = rows[offset : offset + self.page_size]
        done = offset + self.page_size >= len(rows)
        payload: dict[str, Any] = {
            "totalSize": len(rows),
            "done": done,
            "records": [self._json_record(obj, paths, row) for row in page],
        }
        if not done:
            payload["nextRecordsUrl"] = f"/services/data/v{VERSION}/query/{locator}-{offset + self.page_size}"
        return _json(200, payload)

    def _json_record(self, obj: FakeObject, paths: list[tuple[str, ...]], row: dict[str, Any]) -> dict[str, Any]:
        out = _attributes(obj, row)
        for path in paths:
            current_obj, current_row, target = obj, row, out
            for part in path[:-1]:
                rel = current_obj.relationship(part)
                assert rel is not None
                current_obj, current_row = self._parent(current_obj, rel, current_row)
                if current_row is None:
                    target[rel] = None
                    break
                target = target.setdefault(rel, _attributes(current_obj, current_row))
            else:
                name = current_obj.field_name(path[-1])
                target[name] = _to_json(current_row.get(name))
        return out

    # -- Bulk API 2.0 ---------------------------------------------------------------------------

    def _create_job(self, payload: dict[str, Any]) -> tuple:
        soql = payload["query"]
        self.soql.append(soql)
        obj, paths, rows = self.run_soql(soql)
        job_id = "750" + uuid.uuid4().hex[:15]
        self._jobs[job_id] = {"obj": obj, "paths": paths, "rows": rows, "polls": 0}
        return _json(
            200, {"id": job_id, "operation": payload["operation"], "object": obj.name, "state": "UploadComplete"}
        )

    def _job_state(self, job_id: str) -> tuple:
        job = self._jobs[job_id]
        job["polls"] += 1
        state = "InProgress" if job["polls"] <= self.bulk_polls_in_progress else "JobComplete"
        return _json(200, {"id": job_id, "state": state, "numberRecordsProcessed": len(job["rows"])})

    def _job_results(self, job_id: str, query: dict[str, list[str]]) -> tuple:
        job = self._jobs[job_id]
        size = int(query.get("maxRecords", ["50000"])[0])
        offset = int(query.get("locator", ["0"])[0])
        rows = job["rows"][offset : offset + size]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow([".".join(self._spelled(job["obj"], p)) for p in job["paths"]])
        for row in rows:
            writer.writerow([_to_csv(self._value(job["obj"], p, row)) for p in job["paths"]])
        following = offset + size
        headers = {
            "Sforce-Locator": str(following) if following < len(job["rows"]) else "null",
            "Sforce-NumberOfRecords": str(len(rows)),
        }
        return 200, "text/csv", out.getvalue().encode("utf-8"), headers

    # -- SOQL -----------------------------------------------------------------------------------

    def run_soql(self, soql: str) -> tuple[FakeObject, list[tuple[str, ...]] | None, list[dict[str, Any]]]:
        """The object, the selected paths (None for COUNT()) and the matching rows, ordered."""
        match = SOQL.match(soql)
        if not match:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token in {soql!r}")
        obj = self.objects.get(match["object"].lower())
        if obj is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{match['object']}' is not supported.")
        select = [s.strip() for s in match["select"].split(",")]
        paths = None if [s.upper() for s in select] == ["COUNT()"] else [tuple(s.split(".")) for s in select]
        for path in paths or []:
            self._spelled(obj, path)
        rows = [row for row in obj.records if self._matches(obj, match["where"], row)]
        if match["order"]:
            key_path = tuple(match["order"].split("."))
            self._spelled(obj, key_path)
            present = [r for r in rows if self._value(obj, key_path, r) is not None]
            absent = [r for r in rows if self._value(obj, key_path, r) is None]
            present.sort(
                key=lambda r: self._value(obj, key_path, r), reverse=(match["direction"] or "").upper() == "DESC"
            )
            rows = absent + present
        return obj, paths, rows

    def _matches(self, obj: FakeObject, where: str | None, row: dict[str, Any]) -> bool:
        if not where:
            return True
        for term in re.split(r"\s+AND\s+", where.strip(), flags=re.IGNORECASE):
            text = term.strip()
            while text.startswith("(") and text.endswith(")"):
                text = text[1:-1].strip()
            parsed = TERM.match(text)
            if not parsed:
                raise SoqlError("MALFORMED_QUERY", f"unexpected token: {term!r}")
            path = tuple(parsed["field"].split("."))
            self._spelled(obj, path)
            if not _compare(self._value(obj, path, row), parsed["op"], _literal(parsed["value"].strip())):
                return False
        return True

    def _spelled(self, obj: FakeObject, path: tuple[str, ...]) -> tuple[str, ...]:
        spelled = []
        for part in path[:-1]:
            rel = obj.relationship(part)
            if rel is None:
                raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{part}' in field path")
            spelled.append(rel)
            obj = self.objects[obj.relationships[rel][1].lower()]
        name = obj.field_name(path[-1])
        if name is None:
            raise SoqlError("INVALID_FIELD", f"No such column '{path[-1]}' on entity '{obj.name}'")
        return (*spelled, name)

    def _parent(self, obj: FakeObject, rel: str, row: dict[str, Any]) -> tuple[FakeObject, dict[str, Any] | None]:
        ref_field, target_name = obj.relationships[rel]
        target = self.objects[target_name.lower()]
        parent = next((r for r in target.records if r.get("Id") == row.get(ref_field)), None)
        return target, parent

    def _value(self, obj: FakeObject, path: tuple[str, ...], row: dict[str, Any] | None) -> Any:
        for part in path[:-1]:
            if row is None:
                return None
            obj, row = self._parent(obj, obj.relationship(part) or part, row)
        return None if row is None else row.get(obj.field_name(path[-1]) or path[-1])


def _element(xml: str, tag: str) -> str:
    match = re.search(rf"<(?:\w+:)?{tag}>(.*?)</(?:\w+:)?{tag}>", xml, re.DOTALL)
    return match[1] if match else ""


def _attributes(obj: FakeObject, row: dict[str, Any]) -> dict[str, Any]:
    url = f"/services/data/v{VERSION}/sobjects/{obj.name}/{row.get('Id')}"
    return {"attributes": {"type": obj.name, "url": url}}


def _literal(text: str) -> Any:
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("\\'", "'")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if DATETIME_LITERAL.match(text):
        return datetime.fromisoformat(text)
    if DATE_LITERAL.match(text):
        return date.fromisoformat(text)
    try:
        return Decimal(text)
    except ArithmeticError:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: {text!r}") from None


def _compare(value: Any, op: str, literal: Any) -> bool:
    if op in ("=", "!="):
        return (value == literal) == (op == "=")
    if value is None or literal is None:
        return False
    if isinstance(value, datetime) and not isinstance(literal, datetime):
        raise SoqlError("INVALID_FIELD", "value of filter criterion must be of type dateTime")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = Decimal(str(value))
    return {">": value > literal, ">=": value >= literal, "<": value < literal, "<=": value <= literal}[op]


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _to_csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return str(value.isoformat() if isinstance(value, date) else value)


def _json(status: int, payload: Any) -> tuple:
    return status, "application/json;charset=UTF-8", json.dumps(payload).encode("utf-8"), {}


def _handler(fake: FakeSalesforce) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: no delayed-ACK stalls

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            status, content_type, payload, extra = fake.handle(
                self.command, parts.path, parse_qs(parts.query), self.headers, body
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``fake.requests`` instead."""

    return Handler


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost: (certificate file, key file).

    The certificate is its own CA, so the connector trusts it through ``ETL_CONN_<NAME>_CA_BUNDLE``.
    It also names the Salesforce login hosts, for tests that resolve them to this server
    (see :func:`resolve_salesforce_to`).
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-salesforce.localhost")])
    now = datetime.now(UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    *(x509.DNSName(n) for n in ("login.salesforce.com", "test.salesforce.com", "*.my.salesforce.com")),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "fake_salesforce.pem", folder / "fake_salesforce.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def resolve_salesforce_to(port: int) -> Any:
    """A replacement for urllib3's ``create_connection`` that sends ``*.salesforce.com:443`` to
    127.0.0.1:``port`` (the fake), like a hosts-file entry; TLS still checks the host name."""
    from urllib3.util import connection

    original = connection.create_connection

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        host, remote_port = address
        if host.endswith(".salesforce.com") and remote_port == 443:
            address = ("127.0.0.1", port)
        return original(address, *args, **kwargs)

    return create_connection
