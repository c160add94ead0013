"""A local HTTP fake of the BigQuery REST endpoints google-cloud-bigquery calls, backed by DuckDB.

It serves on 127.0.0.1 the calls the connector makes through the real client: ``datasets.get``,
``tables.get/insert/delete``, ``jobs.insert`` (query jobs, and load jobs through the resumable upload
endpoint), ``jobs.get`` and ``jobs.getQueryResults`` (paged with ``maxResults``
and ``pageToken``). SQL is run by DuckDB after a small translation: backtick paths
``project.dataset.table`` become ``"dataset"."table"`` (one DuckDB schema per dataset) and ``@name``
parameters become ``$name``. Scripts run statement by statement on one DuckDB connection, so a
script's ``BEGIN TRANSACTION ... COMMIT TRANSACTION`` is a real DuckDB transaction, rolled back when
a statement fails. Jobs finish synchronously: ``jobs.insert`` answers with state DONE.

Not modelled: BigQuery's SQL dialect beyond what DuckDB shares with it, its type coercion rules,
billing, quotas, the Storage Read API, and job polling of long-running jobs.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from utilities.sql_text import split_statements

API = "/bigquery/v2"
UPLOAD = "/upload/bigquery/v2"

# BigQuery column types <-> DuckDB types (the subset the tests use).
_TO_DUCKDB = {
    "STRING": "VARCHAR",
    "BYTES": "BLOB",
    "INTEGER": "BIGINT",
    "INT64": "BIGINT",
    "FLOAT": "DOUBLE",
    "FLOAT64": "DOUBLE",
    "NUMERIC": "DECIMAL(38,9)",
    "BOOLEAN": "BOOLEAN",
    "BOOL": "BOOLEAN",
    "DATE": "DATE",
    "DATETIME": "TIMESTAMP",
    "TIMESTAMP": "TIMESTAMPTZ",
    "TIME": "TIME",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BACKTICK_PATH = re.compile(r"`[^`]+`(?:\.`[^`]+`)*")
_PARAM = re.compile(r"(?<![@\w])@(\w+)")
_NAME = re.compile(r"(?<![$\w])\$(\w+)")


class FakeBigQuery:
    """The fake server: ``start()``/``stop()`` (or ``with``), ``url`` for API_ENDPOINT, ``execute``
    to seed data, ``requests`` to see what the client called, ``deny``/``fail_with`` to inject errors."""

    def __init__(self, project: str = "test-project") -> None:
        import duckdb

        self.project = project
        self.db = duckdb.connect()
        self.db.execute("SET TimeZone = 'UTC'")
        self.lock = threading.RLock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.results: dict[str, Any] = {}  # job id -> pyarrow table of its rows
        self.uploads: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path with query) of every call
        self.deny = False  # answer every call with 403 accessDenied
        self.fail_with: int | None = None  # answer every call with this HTTP status (e.g. 503)
        self.authorizations: list[str] = []  # Authorization headers seen
        self.created_tables: list[dict[str, Any]] = []  # the resources tables.insert received
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeBigQuery:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.db.close()

    def __enter__(self) -> FakeBigQuery:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- helpers for tests --------------------------------------------------------------------

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run DuckDB SQL directly (seeding and inspecting data); datasets are DuckDB schemas."""
        with self.lock:
            if not _is_query(sql):
                self.db.execute(sql, params) if params is not None else self.db.execute(sql)
                return []
            rows = self.db.sql(sql, params=params).to_arrow_table().to_pylist()
        return [tuple(row.values()) for row in rows]

    def calls(self, method: str, fragment: str) -> list[str]:
        """The paths of the calls with ``method`` whose path contains ``fragment``."""
        return [path for m, path in self.requests if m == method and fragment in path]

    # -- SQL ----------------------------------------------------------------------------------

    def translate(self, sql: str) -> str:
        """BigQuery SQL -> DuckDB SQL: backtick paths to quoted schema.table, ``@name`` to ``$name``."""

        def path(match: re.Match[str]) -> str:
            parts = [p for quoted in match.group(0).split("`.`") for p in quoted.strip("`").split(".")]
            if len(parts) == 3:
                parts = parts[1:]  # project.dataset.table -> dataset.table
            return ".".join(f'"{p}"' for p in parts)

        return _outside_strings(sql, lambda code: _PARAM.sub(r"$\1", _BACKTICK_PATH.sub(path, code)))

    def run_query(self, sql: str, params: dict[str, Any]) -> Any:
        """Run a query or a script; returns the last statement's rows as a pyarrow table (or None)."""
        statements = split_statements(self.translate(sql))
        result = None
        with self.lock:
            try:
                for statement in statements:
                    wanted = {name: params[name] for name in _NAME.findall(statement) if name in params}
                    if _is_query(statement):
                        result = self.db.sql(statement, params=wanted or None).to_arrow_table()
                    else:
                        self.db.execute(statement, wanted) if wanted else self.db.execute(statement)
                        result = None
            except Exception:
                self._rollback()
                raise
        return result

    def _rollback(self) -> None:
        """End a transaction a failed script left open, as BigQuery does when a script fails."""
        import duckdb

        try:
            self.db.execute("ROLLBACK")
        except duckdb.TransactionException:
            pass  # no transaction was open

    def table_schema(self, dataset: str, table: str) -> list[dict[str, str]] | None:
        rows = self.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [dataset, table],
        )
        if not rows:
            return None
        return [
            {"name": name, "type": _bigquery_type_of(kind), "mode": "NULLABLE" if nullable == "YES" else "REQUIRED"}
            for name, kind, nullable in rows
        ]

    def dataset_exists(self, dataset: str) -> bool:
        return bool(self.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = ?", [dataset]))

    def create_table(self, dataset: str, table: str, fields: list[dict[str, Any]]) -> None:
        columns = ", ".join(
            f'"{f["name"]}" {_TO_DUCKDB[f["type"].upper()]}' + (" NOT NULL" if f.get("mode") == "REQUIRED" else "")
            for f in fields
        )
        self.execute(f'CREATE TABLE "{dataset}"."{table}" ({columns})')

    # -- jobs ---------------------------------------------------------------------------------

    def insert_job(self, body: dict[str, Any], data: bytes | None = None) -> dict[str, Any]:
        """Run a query or load job to completion; returns its job resource (DONE, maybe with an error)."""
        reference = dict(body.get("jobReference") or {})
        reference.setdefault("projectId", self.project)
        reference.setdefault("jobId", uuid.uuid4().hex)
        reference.setdefault("location", "US")
        config = body.get("configuration", {})
        now = str(int(datetime.now(UTC).timestamp() * 1000))
        job: dict[str, Any] = {
            "kind": "bigquery#job",
            "id": f"{reference['projectId']}:{reference['location']}.{reference['jobId']}",
            "jobReference": reference,
            "configuration": config,
            "status": {"state": "DONE"},
            "statistics": {"creationTime": now, "startTime": now, "endTime": now},
        }
        try:
            if "query" in config:
                job["statistics"]["query"] = self._run_query_job(reference["jobId"], config["query"])
            elif "load" in config:
                job["statistics"]["load"] = self._run_load_job(config["load"], data or b"")
            else:
                raise _JobError("invalid", "the fake runs query and load jobs only")
        except _JobError as exc:
            job["status"] = {"state": "DONE", "errorResult": exc.as_error(), "errors": [exc.as_error()]}
        except Exception as exc:  # a DuckDB error: report it the way BigQuery reports a failed job
            error = _error_of(exc)
            job["status"] = {"state": "DONE", "errorResult": error, "errors": [error]}
        with self.lock:
            self.jobs[reference["jobId"]] = job
        return job

    def _run_query_job(self, job_id: str, query: dict[str, Any]) -> dict[str, Any]:
        if query.get("useLegacySql", True) is not False:
            raise _JobError("invalidQuery", "the fake supports GoogleSQL only (useLegacySql: false)")
        params = {p["name"]: _parameter_value(p) for p in query.get("queryParameters", [])}
        table = self.run_query(query["query"], params)
        if table is not None:
            with self.lock:
                self.results[job_id] = table
        return {"statementType": "SELECT" if table is not None else "SCRIPT", "totalBytesProcessed": "0"}

    def _run_load_job(self, load: dict[str, Any], data: bytes) -> dict[str, Any]:
        if load.get("sourceFormat") != "NEWLINE_DELIMITED_JSON":
            raise _JobError("invalid", "the fake loads NEWLINE_DELIMITED_JSON only")
        dest = load["destinationTable"]
        dataset, table = dest["datasetId"], dest["tableId"]
        fields = self.table_schema(dataset, table)
        if fields is None:
            raise _JobError("notFound", f"Not found: Table {dest['projectId']}:{dataset}.{table}")
        names = [f["name"] for f in fields]
        binary = {f["name"] for f in fields if f["type"] == "BYTES"}  # BYTES arrive base64-encoded
        rows = []
        for line in data.decode("utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                unknown = set(record) - set(names)
                if unknown:
                    raise _JobError("invalid", f"JSON table encountered unknown fields: {sorted(unknown)}")
                for name in binary & {k for k, v in record.items() if v is not None}:
                    record[name] = base64.b64decode(record[name])
                rows.append(tuple(record.get(name) for name in names))
        with self.lock:
            self.db.execute("BEGIN TRANSACTION")
            try:
                if load.get("writeDisposition") == "WRITE_TRUNCATE":
                    self.db.execute(f'DELETE FROM "{dataset}"."{table}"')
                if rows:
                    marks = ", ".join("?" for _ in names)
                    self.db.executemany(f'INSERT INTO "{dataset}"."{table}" VALUES ({marks})', rows)
                self.db.execute("COMMIT")
            except Exception:
                self.db.execute("ROLLBACK")
                raise
        return {"outputRows": str(len(rows)), "inputFiles": "1", "inputFileBytes": str(len(data))}

    def query_results(self, job_id: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """``jobs.getQueryResults``: one page of rows, with schema, totalRows and the next pageToken."""
        job = self.jobs.get(job_id)
        if job is None:
            return 404, _error_body(404, "notFound", f"Not found: Job {self.project}:{job_id}")
        error = job["status"].get("errorResult")
        if error:
            return _STATUS_OF_REASON.get(error["reason"], 400), _error_body(
                _STATUS_OF_REASON.get(error["reason"], 400), error["reason"], error["message"]
            )
        body: dict[str, Any] = {"kind": "bigquery#getQueryResultsResponse", "jobReference": job["jobReference"]}
        body["jobComplete"] = True
        table = self.results.get(job_id)
        if table is None:
            return 200, body
        body["schema"] = {"fields": [_field_of(f) for f in table.schema]}
        body["totalRows"] = str(table.num_rows)
        start = int(query.get("pageToken", query.get("startIndex", ["0"]))[0])
        size = int(query.get("maxResults", [str(table.num_rows)])[0])
        if size == 0:
            return 200, body
        page = table.slice(start, size)
        kinds = [f["type"] for f in body["schema"]["fields"]]
        body["rows"] = [
            {"f": [{"v": _encode(value, kind)} for value, kind in zip(row.values(), kinds, strict=True)]}
            for row in page.to_pylist()
        ]
        if start + size < table.num_rows:
            body["pageToken"] = str(start + size)
        return 200, body


class _JobError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def as_error(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message}


_STATUS_OF_REASON = {"notFound": 404, "accessDenied": 403, "invalidQuery": 400, "invalid": 400, "backendError": 503}


def _error_of(exc: Exception) -> dict[str, str]:
    import duckdb

    message = str(exc).splitlines()[0]
    reason = "notFound" if isinstance(exc, duckdb.CatalogException) else "invalidQuery"
    return {"reason": reason, "message": message}


def _is_query(sql: str) -> bool:
    """True for a statement that returns rows (SELECT, WITH, VALUES, FROM)."""
    return bool(re.match(r"\s*\(*\s*(select|with|values|from)\b", sql, re.IGNORECASE))


def _error_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "errors": [{"reason": reason, "message": message}]}}


def _outside_strings(sql: str, change: Any) -> str:
    """Apply ``change`` to the parts of ``sql`` outside '...' and "..." literals."""
    parts = re.split(r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")", sql)
    return "".join(part if i % 2 else change(part) for i, part in enumerate(parts))


def _parameter_value(param: dict[str, Any]) -> Any:
    kind = param["parameterType"]["type"]
    value = param.get("parameterValue", {}).get("value")
    if value is None:
        return None
    if kind in ("INT64", "INTEGER"):
        return int(value)
    if kind in ("FLOAT64", "FLOAT"):
        return float(value)
    if kind in ("NUMERIC", "BIGNUMERIC"):
        return Decimal(value)
    if kind in ("BOOL", "BOOLEAN"):
        return value.lower() == "true"
    return value  # STRING, DATE, DATETIME, TIMESTAMP: DuckDB casts the text where it is compared


def _bigquery_type_of(duckdb_type: str) -> str:
    kind = duckdb_type.upper()
    if kind.startswith("DECIMAL"):
        return "NUMERIC"
    return {
        "BIGINT": "INTEGER",
        "INTEGER": "INTEGER",
        "SMALLINT": "INTEGER",
        "HUGEINT": "INTEGER",
        "VARCHAR": "STRING",
        "BLOB": "BYTES",
        "DOUBLE": "FLOAT",
        "FLOAT": "FLOAT",
        "BOOLEAN": "BOOLEAN",
        "DATE": "DATE",
        "TIMESTAMP": "DATETIME",
        "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
        "TIME": "TIME",
    }.get(kind, "STRING")


def _field_of(field: Any) -> dict[str, str]:
    import pyarrow as pa

    kind = field.type
    if pa.types.is_integer(kind):
        name = "INTEGER"
    elif pa.types.is_decimal(kind):
        name = "NUMERIC"
    elif pa.types.is_floating(kind):
        name = "FLOAT"
    elif pa.types.is_boolean(kind):
        name = "BOOLEAN"
    elif pa.types.is_timestamp(kind):
        name = "TIMESTAMP" if kind.tz else "DATETIME"
    elif pa.types.is_date(kind):
        name = "DATE"
    elif pa.types.is_time(kind):
        name = "TIME"
    elif pa.types.is_binary(kind):
        name = "BYTES"
    else:
        name = "STRING"
    return {"name": field.name, "type": name, "mode": "NULLABLE"}


def _encode(value: Any, kind: str) -> str | None:
    """A value as BigQuery's JSON rows carry it (TIMESTAMP as int64 microseconds: useInt64Timestamp)."""
    if value is None:
        return None
    if kind == "TIMESTAMP":
        return str((value - _EPOCH) // timedelta(microseconds=1))
    if kind == "DATETIME":
        return value.isoformat(timespec="microseconds") if value.microsecond else value.isoformat()
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if kind == "BYTES":
        return base64.b64encode(value).decode("ascii")
    return str(value)  # INTEGER, FLOAT, NUMERIC, STRING, DATE, TIME


class _Handler(BaseHTTPRequestHandler):
    """Routes the REST calls to the fake; every answer is JSON like BigQuery's."""

    fake: FakeBigQuery
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # answers go out at once (no 40 ms delayed-ACK stalls)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``fake.requests`` instead."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        fake = self.fake
        body = self._body()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        with fake.lock:
            fake.requests.append((method, self.path))
            if self.headers.get("Authorization"):
                fake.authorizations.append(self.headers["Authorization"])
        if fake.deny:
            message = f"Access Denied: Project {fake.project}: User does not have permission"
            return self._json(403, _error_body(403, "accessDenied", message))
        if fake.fail_with is not None:
            return self._json(fake.fail_with, _error_body(fake.fail_with, "backendError", "Backend error"))
        try:
            status, answer, headers = self._route(method, parts.path, query, body)
        except _JobError as exc:
            status, answer, headers = _STATUS_OF_REASON.get(exc.reason, 400), {}, {}
            answer = _error_body(status, exc.reason, exc.message)
        self._json(status, answer, headers)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        fake = self.fake
        if path.startswith(UPLOAD):
            return self._upload(method, query, body)
        if not path.startswith(API + "/projects/"):
            return 404, _error_body(404, "notFound", f"no route {path}"), {}
        segments = path[len(API) + 1 :].split("/")  # projects, p, kind, id, ...
        kind = segments[2] if len(segments) > 2 else ""
        if kind == "jobs" and method == "POST" and len(segments) == 3:
            return 200, fake.insert_job(json.loads(body or b"{}")), {}
        if kind == "jobs" and method == "GET" and len(segments) == 4:
            job = fake.jobs.get(segments[3])
            if job is None:
                return 404, _error_body(404, "notFound", f"Not found: Job {segments[3]}"), {}
            return 200, job, {}
        if kind == "queries" and method == "GET" and len(segments) == 4:
            status, answer = fake.query_results(segments[3], query)
            return status, answer, {}
        if kind == "datasets":
            return self._datasets(method, segments[1], segments[3:], body)
        return 404, _error_body(404, "notFound", f"the fake has no route for {method} {path}"), {}

    def _datasets(
        self, method: str, project: str, rest: list[str], body: bytes
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        fake = self.fake
        dataset = rest[0]
        if not fake.dataset_exists(dataset):
            return 404, _error_body(404, "notFound", f"Not found: Dataset {project}:{dataset}"), {}
        reference = {"projectId": project, "datasetId": dataset}
        if len(rest) == 1 and method == "GET":
            return 200, {"kind": "bigquery#dataset", "id": f"{project}:{dataset}", "datasetReference": reference}, {}
        if len(rest) == 2 and rest[1] == "tables" and method == "POST":
            resource = json.loads(body)
            fake.created_tables.append(resource)
            table = resource["tableReference"]["tableId"]
            if fake.table_schema(dataset, table) is not None:
                return 409, _error_body(409, "duplicate", f"Already Exists: Table {project}:{dataset}.{table}"), {}
            fake.create_table(dataset, table, resource.get("schema", {}).get("fields", []))
            return 200, self._table(project, dataset, table), {}
        if len(rest) == 3 and rest[1] == "tables":
            table = rest[2]
            if fake.table_schema(dataset, table) is None:
                return 404, _error_body(404, "notFound", f"Not found: Table {project}:{dataset}.{table}"), {}
            if method == "GET":
                return 200, self._table(project, dataset, table), {}
            if method == "DELETE":
                fake.execute(f'DROP TABLE "{dataset}"."{table}"')
                return 204, None, {}
        return 404, _error_body(404, "notFound", f"the fake has no route for {method} datasets/{'/'.join(rest)}"), {}

    def _table(self, project: str, dataset: str, table: str) -> dict[str, Any]:
        return {
            "kind": "bigquery#table",
            "id": f"{project}:{dataset}.{table}",
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table},
            "schema": {"fields": self.fake.table_schema(dataset, table)},
            "type": "TABLE",
        }

    def _upload(
        self, method: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """Load-job uploads through a resumable session (the connector never sends a size, so the
        client always uses one): POST opens it, each PUT appends a chunk, the last one runs the job."""
        fake = self.fake
        kind = query.get("uploadType", [""])[0]
        if kind == "resumable" and method == "POST":
            upload_id = uuid.uuid4().hex
            fake.uploads[upload_id] = {"metadata": json.loads(body or b"{}"), "data": bytearray()}
            location = f"{fake.url}{UPLOAD}/projects/{fake.project}/jobs?uploadType=resumable&upload_id={upload_id}"
            return 200, {}, {"Location": location}
        if kind == "resumable" and method == "PUT":
            session = fake.uploads[query["upload_id"][0]]
            session["data"].extend(body)
            total = self.headers.get("Content-Range", "").rpartition("/")[2]
            if total == "*":
                return 308, None, {"Range": f"bytes=0-{len(session['data']) - 1}"}
            del fake.uploads[query["upload_id"][0]]
            return 200, fake.insert_job(session["metadata"], bytes(session["data"])), {}
        return 400, _error_body(400, "invalid", f"unsupported upload {method} uploadType={kind}"), {}

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self, status: int, answer: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
        data = b"" if answer is None else json.dumps(answer).encode("utf-8")
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if answer is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def running(project: str = "test-project") -> Iterator[FakeBigQuery]:
    """A started fake, stopped afterwards."""
    fake = FakeBigQuery(project).start()
    try:
        yield fake
    finally:
        fake.stop()


def connector_for(fake: FakeBigQuery, home: Any, dataset: str = "ds", name: str = "bq", **settings: str) -> Any:
    """A BigQuery connector (the real client) pointed at ``fake``; ``settings`` are its ETL_CONN_<NAME>_* keys."""
    from connectors import open_connector
    from utilities.secrets import Secret

    variables = {f"ETL_CONN_{name.upper()}_API_ENDPOINT": fake.url}
    variables.update({f"ETL_CONN_{name.upper()}_{key.upper()}": value for key, value in settings.items()})
    url = f"bigquery://{fake.project}/{dataset}?location=EU"
    return open_connector(name, Secret(url), home, variables)
