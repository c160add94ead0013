"""Amazon S3 and S3-compatible stores through boto3: CSV and Parquet objects as a source, output files
as a destination.

``s3://bucket/optional/prefix?region=eu-west-1&endpoint_url=http://127.0.0.1:9000``. Credentials come
from ``ETL_CONN_<NAME>_ACCESS_KEY_ID`` / ``_SECRET_ACCESS_KEY`` / ``_SESSION_TOKEN``, else from the
standard ``AWS_*`` variables, else from boto3's default chain (instance role, ``~/.aws``).

A table's source names the objects with ``pattern`` (a glob on the keys below the prefix: ``*`` and
``?`` stay inside one ``/`` segment, ``**`` crosses them). CSV is read exactly as the CSV folder
connector reads it (every value as text); Parquet keeps its own types. Each row can carry its
object's metadata as extra columns (``_source_key``, ``_source_modified``, ``_source_partition``);
when the table's cursor is one of them, whole objects are selected by the window, so an object
already loaded is never read again.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import Capabilities, Chunk, Connector, ReadRequest, Row, RowStream, import_driver
from connectors.csv_files import csv_rows
from connectors.driver_errors import Verdict, fatal, transient, translating
from connectors.s3_source import (
    META_COLUMNS,
    SOURCE_MODIFIED,
    SOURCE_PARTITION,
    S3Location,
    S3Object,
    SourcePlan,
    meta_values,
    parse_s3_url,
    partition_date,
    partition_regex,
    row_filter,
    select_objects,
    source_plan,
)
from utilities.errors import ConfigError, FatalError
from utilities.secrets import Secret

if TYPE_CHECKING:
    from connectors.columns import SourceColumn

logger = logging.getLogger(__name__)

HEADER_LIMIT = 1 << 20  # a CSV header line longer than this is an error, not a reason to read on
RANGE_BUFFER = 8 << 20  # Parquet is read with ranged GETs of at least this size

# ClientError codes that retrying can fix; any other 4xx is fatal, any 5xx transient.
_TRANSIENT_CODES = {
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalError",
    "ServiceUnavailable",
    "PreconditionFailed",  # the object changed while it was read: list and read it again
}
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
}


class S3Connector(Connector):
    """A bucket (and optional prefix): objects are read as a source; output files are uploaded to it."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=False, sql=False, upload=True)
    kind: ClassVar[str] = "S3"

    _client: Any = None

    # -- connection ---------------------------------------------------------------------------

    @property
    def location(self) -> S3Location:
        return parse_s3_url(self.url.reveal(), self.name)

    @property
    def database_name(self) -> str:
        return self.location.bucket

    @property
    def client(self) -> Any:
        """The boto3 S3 client, created on first use (this imports boto3)."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        boto3 = self.driver()
        from botocore.config import Config

        where = self.location
        key_id, secret, token = self._credentials()
        timeout = int(self.variable("ETL_CONNECT_TIMEOUT", "15") or 15)
        config = Config(
            connect_timeout=timeout,
            read_timeout=max(timeout, 60),
            retries={"max_attempts": where.max_attempts, "mode": "standard"},
            s3={"addressing_style": where.addressing_style} if where.addressing_style else None,
        )
        with self.translate_errors("configure the client"):
            session = _shared_session(boto3, None if key_id else self.variable("AWS_PROFILE"))
            return session.client(
                "s3",
                aws_access_key_id=key_id,
                aws_secret_access_key=secret.reveal() if secret else None,
                aws_session_token=token.reveal() if token else None,
                region_name=where.region or self.variable("AWS_REGION") or self.variable("AWS_DEFAULT_REGION"),
                endpoint_url=where.endpoint_url
                or self.variable("AWS_ENDPOINT_URL_S3")
                or self.variable("AWS_ENDPOINT_URL"),
                config=config,
            )

    def _credentials(self) -> tuple[str | None, Secret | None, Secret | None]:
        """(access key id, secret key, session token): connection settings first, then ``AWS_*``;
        all None lets boto3's default chain decide (instance role, ``~/.aws``)."""
        prefix = f"ETL_CONN_{self.name.upper()}_"
        for read, label in ((self.setting, prefix), (lambda key: self.variable(f"AWS_{key}"), "AWS_")):
            key_id = read("ACCESS_KEY_ID")
            if key_id:
                secret = read("SECRET_ACCESS_KEY")
                if not secret:
                    raise ConfigError(
                        f"S3 connection {self.name!r}: {label}ACCESS_KEY_ID is set but {label}SECRET_ACCESS_KEY is not"
                    )
                token = read("SESSION_TOKEN")
                return key_id, Secret(secret), Secret(token) if token else None
        return None, None, None

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    def driver(self) -> Any:
        """boto3, imported now (FatalError naming the package when it is missing)."""
        return import_driver("boto3", kind=self.kind, connection=self.name, package="boto3")

    def check(self) -> str:
        where = self.location
        with self.translate_errors("list the bucket"):
            self.client.list_objects_v2(Bucket=where.bucket, Prefix=where.prefix, MaxKeys=1)
        shown = f", prefix {where.prefix}" if where.prefix else ""
        return f"S3 bucket {where.bucket}{shown} (boto3 {self.driver().__version__})"

    @contextmanager
    def translate_errors(self, action: str, key: str | None = None) -> Iterator[None]:
        """Turn botocore errors into TransientError or FatalError that name the connection and what to check."""
        self.driver()
        with translating(self, action, self._classify, place=self.location.uri(key) if key else None):
            yield

    def _classify(self, exc: BaseException) -> Verdict | None:
        """The verdict for a boto3 error by S3's error code and HTTP status, or None if it is not one."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, S3UploadFailedError):
            cause = exc.__context__
            if isinstance(cause, ClientError):
                return self._client_error(cause)
            return fatal(_first_line(str(exc)), "check the bucket and the credentials")
        if isinstance(exc, ClientError):
            return self._client_error(exc)
        if isinstance(exc, BotoCoreError):
            return self._botocore_error(exc)
        return None

    def _client_error(self, exc: Any) -> Verdict:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = f"{code}: {str(error.get('Message') or 'no message').rstrip('.')}"
        var = f"ETL_CONN_{self.name.upper()}"
        if code in _TRANSIENT_CODES or status >= 500:
            return transient(detail, "the service is busy or failing; it is retried")
        if code in _CREDENTIAL_CODES:
            hint = f"check the credentials: {var}_ACCESS_KEY_ID and {var}_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID...)"
        elif code in {"NoSuchBucket", "InvalidBucketName"}:
            hint = f"the bucket does not exist: check the bucket name in {var}"
        elif code in {"NoSuchKey", "404"}:
            hint = "the object does not exist (it was deleted while the run listed it?)"
        elif code in {"AccessDenied", "AllAccessDisabled", "403"}:
            hint = "the credentials lack permission (s3:ListBucket, s3:GetObject, s3:PutObject) on this bucket"
        elif code in {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}:
            hint = f"the bucket is in another region: set ?region=... in {var}"
        else:
            hint = f"check {var} and the bucket's settings"
        return fatal(detail, hint)

    def _botocore_error(self, exc: Exception) -> Verdict:
        from botocore import exceptions as bx

        detail = _first_line(str(exc))
        if isinstance(exc, bx.SSLError):
            return fatal(detail, "check the endpoint's TLS certificate")
        if isinstance(exc, (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError)):
            return transient(detail, "check that the endpoint is reachable from here (endpoint_url, network, proxy)")
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.ProfileNotFound)):
            var = f"ETL_CONN_{self.name.upper()}"
            return fatal(detail, f"no usable credentials: set {var}_ACCESS_KEY_ID and {var}_SECRET_ACCESS_KEY")
        return fatal(detail, f"check ETL_CONN_{self.name.upper()}")

    # -- the source ---------------------------------------------------------------------------

    @classmethod
    def validate_source(cls, options: Mapping[str, Any], where: str) -> None:
        source_plan(options, None, where)

    def objects(self, plan: SourcePlan) -> list[S3Object]:
        """Every object below the prefix whose key matches the plan's pattern, sorted by key."""
        where = self.location
        regex = plan.regex
        partition = partition_regex(plan.partition) if plan.partition else None
        found: list[S3Object] = []
        with self.translate_errors("list objects"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=where.bucket, Prefix=where.prefix + plan.literal_prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    relative = item["Key"][len(where.prefix) :]
                    if item["Key"].endswith("/") or not regex.fullmatch(relative):
                        continue
                    found.append(
                        S3Object(
                            key=item["Key"],
                            modified=item["LastModified"].astimezone(UTC),
                            size=int(item["Size"]),
                            etag=str(item.get("ETag", "")),
                            partition=self._partition_of(partition, relative, plan) if partition else None,
                        )
                    )
        return sorted(found, key=lambda o: o.key)

    def _partition_of(self, regex: re.Pattern[str], relative: str, plan: SourcePlan) -> date:
        match = regex.search(relative)
        if match is None:
            raise FatalError(
                f"S3 connection {self.name!r}: object {relative!r} matches pattern {plan.pattern!r} but has no "
                f"date partition {plan.partition!r} in its key; narrow the pattern or fix the partition option"
            )
        try:
            return partition_date(match)
        except ValueError as exc:
            raise FatalError(f"S3 connection {self.name!r}: object {relative!r}: bad partition date: {exc}") from None

    def describe_read(self, request: ReadRequest) -> str:
        plan = source_plan(request.options, request.cursor, f"connection {self.name}")
        text = f"list {self.location.uri()}{plan.pattern} and read each object as {plan.fmt}"
        if plan.fmt == "csv":
            text += " (every value as text)"
        if plan.meta:
            text += f", adding columns {', '.join(plan.meta)}"
        if request.filtered and request.cursor:
            unit = "objects" if request.cursor in META_COLUMNS else "rows"
            upper = f" <= {request.window_end}" if request.window_end is not None else ""
            text += f"; keep {unit} where {request.window_start} < {request.cursor}{upper}"
        return text

    def read(self, request: ReadRequest) -> RowStream:
        plan = source_plan(request.options, request.cursor, f"connection {self.name}")
        listed = self.objects(plan)
        if not listed:
            raise FatalError(
                f"S3 connection {self.name!r}: no object matches {plan.pattern!r} in {self.location.uri()}; "
                f"check the pattern and the prefix in ETL_CONN_{self.name.upper()}"
            )
        selected = select_objects(listed, request)
        # The columns come from the first object read, or (nothing new) from the newest matching one.
        first = self._open(selected[0] if selected else max(listed, key=lambda o: (o.modified, o.key)), plan, request)
        data_columns = first.columns
        clashing = sorted(set(data_columns) & set(plan.meta))
        if clashing:
            first.close()
            raise FatalError(f"S3 connection {self.name!r}: object columns {clashing} clash with the source columns")
        keep = row_filter(data_columns, request, self.name)
        chunks = self._chunks(selected, first, plan, request, keep)

        def close() -> None:
            chunks.close()
            first.close()

        logger.info("S3 %s: %d object(s) match %r, %d to read", self.name, len(listed), plan.pattern, len(selected))
        return RowStream(list(data_columns) + list(plan.meta), chunks, close)

    def describe_columns(self, request: ReadRequest) -> tuple[SourceColumn, ...]:
        """The newest matching object's columns: a Parquet file's Arrow types (read from its footer), a
        CSV file's header as text; then the source columns (key and partition as text, modified as a
        timestamp with time zone)."""
        import sqlalchemy.types as sat

        from connectors.columns import SourceColumn, from_arrow

        plan = source_plan(request.options, request.cursor, f"connection {self.name}")
        listed = self.objects(plan)
        if not listed:
            raise FatalError(
                f"S3 connection {self.name!r}: no object matches {plan.pattern!r} in {self.location.uri()}"
            )
        newest = max(listed, key=lambda o: (o.modified, o.key))
        if plan.fmt == "parquet":
            import pyarrow.parquet as pq

            handle = io.BufferedReader(_RangedObject(self, newest), buffer_size=RANGE_BUFFER)
            try:
                with self._reading(newest):
                    schema = pq.ParquetFile(handle, pre_buffer=False).schema_arrow
            finally:
                handle.close()
            columns = [SourceColumn(f.name, from_arrow(f.type)) for f in schema]
        else:
            opened = self._open_csv(newest, plan)
            opened.close()
            columns = [SourceColumn(name, sat.Text()) for name in opened.columns]
        meta: dict[str, sat.TypeEngine[Any]] = {
            SOURCE_MODIFIED: sat.DateTime(timezone=True),
            SOURCE_PARTITION: sat.Date(),
        }
        return tuple(columns) + tuple(SourceColumn(name, meta.get(name, sat.Text())) for name in plan.meta)

    def _chunks(
        self,
        objects: list[S3Object],
        first: OpenObject,
        plan: SourcePlan,
        request: ReadRequest,
        keep: Callable[[Row], bool] | None,
    ) -> Generator[Chunk, None, None]:
        size = request.chunk_size
        pending: Chunk = []
        for index, obj in enumerate(objects):
            current = first if index == 0 else self._open(obj, plan, request)
            try:
                if current.columns != first.columns:
                    raise FatalError(
                        f"S3 connection {self.name!r}: object {obj.key} has columns {current.columns}, "
                        f"other than {objects[0].key} ({first.columns})"
                    )
                tail = meta_values(obj, plan.meta)
                for rows in current.batches:
                    if keep is not None:
                        rows = [row for row in rows if keep(row)]
                    pending.extend(row + tail for row in rows)
                    while len(pending) >= size:
                        yield pending[:size]
                        pending = pending[size:]
            finally:
                current.close()
        if pending:
            yield pending

    def _open(self, obj: S3Object, plan: SourcePlan, request: ReadRequest) -> OpenObject:
        """Open one object for reading; its columns are known once this returns."""
        if plan.fmt == "parquet":
            return self._open_parquet(obj, request.chunk_size)
        return self._open_csv(obj, plan)

    def _open_csv(self, obj: S3Object, plan: SourcePlan) -> OpenObject:
        where = self.location
        with self.translate_errors("read object", obj.key):
            body = self.client.get_object(Bucket=where.bucket, Key=obj.key, IfMatch=obj.etag)["Body"]
        try:
            stream: Any = body
            if obj.key.lower().endswith(".gz"):
                import gzip

                stream = gzip.GzipFile(fileobj=body, mode="rb")
            with self._reading(obj):
                columns, head = peek_csv_header(stream, plan.delimiter, plan.encoding)
        except BaseException:
            body.close()
            raise
        if not columns:
            body.close()
            raise FatalError(f"S3 connection {self.name!r}: object {obj.key} is empty (a header line is required)")
        replay = io.BufferedReader(_Replay(head, stream), buffer_size=1 << 20)
        rows = csv_rows(replay, columns, plan.delimiter, plan.encoding)
        return OpenObject(columns, self._guarded(rows, obj), body.close)

    def _open_parquet(self, obj: S3Object, chunk_size: int) -> OpenObject:
        import pyarrow.parquet as pq

        raw = _RangedObject(self, obj)
        handle = io.BufferedReader(raw, buffer_size=RANGE_BUFFER)
        try:
            with self._reading(obj):
                parquet = pq.ParquetFile(handle, pre_buffer=False)  # one row group at a time, not the file
            columns = list(parquet.schema_arrow.names)
        except BaseException:
            handle.close()
            raise
        rows = (_parquet_rows(batch) for batch in parquet.iter_batches(batch_size=chunk_size))
        return OpenObject(columns, self._guarded(rows, obj), handle.close)

    def _guarded(self, batches: Iterator[Chunk], obj: S3Object) -> Iterator[Chunk]:
        with self._reading(obj):
            yield from batches

    @contextmanager
    def _reading(self, obj: S3Object) -> Iterator[None]:
        """Driver errors while reading ``obj``'s content: the network's are transient, the file's fatal."""
        import pyarrow as pa

        with self.translate_errors("read object", obj.key):
            try:
                yield
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, csv.Error, UnicodeError, EOFError, OSError) as exc:
                if type(exc).__module__.startswith("botocore"):
                    raise
                raise FatalError(
                    f"S3 connection {self.name!r}: object {self.location.uri(obj.key)} cannot be read: "
                    f"{_first_line(str(exc))}"
                ) from exc

    # -- the destination ----------------------------------------------------------------------

    def put_file(self, path: Path, name: str) -> str:
        """Upload ``path`` as ``<prefix>/<name>`` (multipart when large); returns its ``s3://`` URI."""
        where = self.location
        key = where.prefix + name.lstrip("/")
        extra = {"ContentType": "text/csv"} if path.suffix.lower() == ".csv" else None
        with self.translate_errors("upload", key):
            self.client.upload_file(str(path), where.bucket, key, ExtraArgs=extra)
        return where.uri(key)


_SESSIONS: dict[str | None, Any] = {}


def _shared_session(boto3: Any, profile: str | None) -> Any:
    """One boto3 session per profile for the process: it caches the service models, so a client costs
    milliseconds instead of a third of a second. Credentials are given per client, never stored in it."""
    if profile not in _SESSIONS:
        _SESSIONS[profile] = boto3.session.Session(profile_name=profile)
    return _SESSIONS[profile]


@dataclass
class OpenObject:
    """An object being read: its column names, its rows one block at a time, and how to release it."""

    columns: list[str]
    batches: Iterator[Chunk]
    _close: Callable[[], None]

    def close(self) -> None:
        close, self._close = self._close, _nothing
        if hasattr(self.batches, "close"):
            self.batches.close()
        close()


def _nothing() -> None:
    return None


class _Replay(io.RawIOBase):
    """A byte stream that returns ``head`` (already read to find the header) before the rest."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if len(self._head):
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _RangedObject(io.RawIOBase):
    """A seekable view of one object, read with ranged GETs pinned to its ETag (for Parquet's footer)."""

    def __init__(self, connector: S3Connector, obj: S3Object) -> None:
        self._connector = connector
        self._obj = obj
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._obj.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._obj.size or not len(buffer):
            return 0
        last = min(self._position + len(buffer), self._obj.size) - 1
        connector = self._connector
        with connector.translate_errors("read object", self._obj.key):
            response = connector.client.get_object(
                Bucket=connector.location.bucket,
                Key=self._obj.key,
                Range=f"bytes={self._position}-{last}",
                IfMatch=self._obj.etag,
            )
            data = response["Body"].read()
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


# -- reading helpers ----------------------------------------------------------------------------


def peek_csv_header(stream: Any, delimiter: str, encoding: str) -> tuple[list[str], bytes]:
    """The header of a CSV byte stream, and the bytes read to find it (they are read again later)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    head = b""
    text = ""
    while True:
        part = stream.read(64 << 10)
        head += part
        text += decoder.decode(part, final=not part)
        header = _complete_first_record(text.removeprefix("\ufeff"), delimiter, final=not part)
        if header is not None:
            return header, head
        if len(head) > HEADER_LIMIT:
            raise FatalError(f"the CSV header line is longer than {HEADER_LIMIT} bytes")


def _complete_first_record(text: str, delimiter: str, final: bool) -> list[str] | None:
    """The first CSV record of ``text`` if it is complete (ends with a line break, or the data ended)."""
    buffer = io.StringIO(text, newline="")
    try:
        record = next(csv.reader(buffer, delimiter=delimiter), [])
    except csv.Error:
        if final:
            raise
        return None
    if final:
        return record
    consumed = text[: buffer.tell()]
    return record if consumed.endswith(("\n", "\r")) else None


def _parquet_rows(batch: Any) -> Chunk:
    """A record batch as tuples; nested values (struct, list, map) become JSON text."""
    import pyarrow as pa

    columns = []
    for column in batch.columns:
        values = column.to_pylist()
        if pa.types.is_nested(column.type):
            values = [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in values]
        columns.append(values)
    return list(zip(*columns, strict=True))


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0].strip() if message.strip() else "unknown error"
