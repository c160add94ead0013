"""The rules of an S3 source, without any I/O: the connection URL, a table's ``source:`` options, key
patterns and date partitions, and which objects and rows a load window keeps."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from connectors.base import ReadRequest, Row
from utilities.dates import as_datetime
from utilities.errors import ConfigError, FatalError

SOURCE_KEY = "_source_key"
SOURCE_MODIFIED = "_source_modified"
SOURCE_PARTITION = "_source_partition"
META_COLUMNS = (SOURCE_KEY, SOURCE_MODIFIED, SOURCE_PARTITION)
SOURCE_OPTIONS = {"pattern", "format", "delimiter", "encoding", "partition", "source_columns"}
URL_OPTIONS = {"region", "endpoint_url", "max_attempts", "addressing_style"}
FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}  # format from the pattern

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PARTITION_PARTS = {
    "date": r"(?P<date>\d{4}-\d{2}-\d{2})",
    "year": r"(?P<year>\d{4})",
    "month": r"(?P<month>\d{1,2})",
    "day": r"(?P<day>\d{1,2})",
}


@dataclass(frozen=True)
class S3Location:
    """The parts of an ``s3://`` connection URL (no secret is ever part of it)."""

    bucket: str
    prefix: str  # "" or "folder/" (always ends with "/")
    region: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = 3
    addressing_style: str | None = None

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key or self.prefix}"


@dataclass(frozen=True)
class S3Object:
    """One listed object: its key, LastModified (aware, UTC), size, ETag and date partition."""

    key: str
    modified: datetime
    size: int
    etag: str
    partition: date | None = None


@dataclass(frozen=True)
class SourcePlan:
    """A table's validated source options, with the metadata columns its rows carry."""

    pattern: str
    fmt: str
    delimiter: str
    encoding: str
    partition: str | None
    meta: tuple[str, ...]

    @property
    def regex(self) -> re.Pattern[str]:
        return glob_regex(self.pattern)

    @property
    def literal_prefix(self) -> str:
        """The part of the pattern before its first wildcard: listing starts there."""
        return re.split(r"[*?]", self.pattern, maxsplit=1)[0]


# -- source options ---------------------------------------------------------------------------


def source_plan(options: Mapping[str, Any], cursor: str | None, where: str) -> SourcePlan:
    """Validate a table's ``source:`` options (ConfigError naming ``where`` and the key)."""
    unknown = set(options) - SOURCE_OPTIONS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
            f"(an S3 source takes: {', '.join(sorted(SOURCE_OPTIONS))})"
        )
    pattern = options.get("pattern", "**")
    if not isinstance(pattern, str) or not pattern.strip() or pattern.startswith("/"):
        raise ConfigError(f"{where}.pattern: expected a glob on keys below the prefix, e.g. orders/*.csv")
    fmt = _format(options.get("format"), pattern, where)
    delimiter = options.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConfigError(f"{where}.delimiter: expected one character, got {delimiter!r}")
    if fmt == "parquet" and "delimiter" in options:
        raise ConfigError(f"{where}.delimiter: applies to CSV objects only (format is parquet)")
    encoding = options.get("encoding", "utf-8")
    try:
        codecs.lookup(str(encoding))
    except LookupError:
        raise ConfigError(f"{where}.encoding: {encoding!r} is not a known text encoding") from None
    partition = options.get("partition")
    if partition is not None:
        if not isinstance(partition, str):
            raise ConfigError(f"{where}.partition: expected a key template such as dt={{date}}")
        try:
            partition_regex(partition)
        except ValueError as exc:
            raise ConfigError(f"{where}.partition: {exc}") from None
    meta = _meta_columns(options.get("source_columns", False), partition is not None, where)
    if cursor in META_COLUMNS:
        if cursor == SOURCE_KEY:
            raise ConfigError(f"{where}: cursor {SOURCE_KEY} is not supported; use {SOURCE_MODIFIED} or a partition")
        if cursor == SOURCE_PARTITION and partition is None:
            raise ConfigError(f"{where}: cursor {SOURCE_PARTITION} needs a partition: option, e.g. dt={{date}}")
        if cursor not in meta:  # the load tracks its watermark on the cursor: it must be returned
            meta = tuple(c for c in META_COLUMNS if c in meta or c == cursor)
    return SourcePlan(
        pattern=pattern.strip(),
        fmt=fmt,
        delimiter=delimiter,
        encoding=str(encoding),
        partition=partition,
        meta=meta,
    )


def _format(value: Any, pattern: str, where: str) -> str:
    if value is not None:
        if value not in ("csv", "parquet"):
            raise ConfigError(f"{where}.format: expected csv or parquet, got {value!r}")
        return str(value)
    lowered = pattern.lower()
    for suffix, fmt in FORMATS.items():
        if lowered.endswith(suffix):
            return fmt
    raise ConfigError(
        f"{where}.format: the pattern {pattern!r} has no .csv or .parquet ending; say format: csv or parquet"
    )


def _meta_columns(value: Any, partitioned: bool, where: str) -> tuple[str, ...]:
    available = [c for c in META_COLUMNS if partitioned or c != SOURCE_PARTITION]
    if value is True:
        return tuple(available)
    if value is False or value is None:
        return ()
    if isinstance(value, list) and value and all(v in available for v in value):
        return tuple(c for c in META_COLUMNS if c in value)
    raise ConfigError(
        f"{where}.source_columns: expected true, false or a list of {', '.join(available)}"
        + ("" if partitioned else f" ({SOURCE_PARTITION} needs a partition: option)")
        + f", got {value!r}"
    )


def glob_regex(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` match inside one ``/`` segment; ``**/`` any number of folders; ``**`` anything."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts), re.DOTALL)


def partition_regex(template: str) -> re.Pattern[str]:
    """``dt={date}`` or ``year={year}/month={month}/day={day}`` -> a regex found in the key.

    ``{date}`` is ``YYYY-MM-DD``; ``{year}`` may come with ``{month}`` and ``{day}`` (missing parts are 1).
    """
    names = _PLACEHOLDER.findall(template)
    unknown = [n for n in names if n not in _PARTITION_PARTS]
    if unknown or not names:
        raise ValueError(f"expected a template with {{date}} or {{year}}/{{month}}/{{day}}, got {template!r}")
    if len(set(names)) != len(names) or ("date" in names and len(names) > 1):
        raise ValueError(f"use {{date}} alone, or {{year}} with {{month}} and {{day}} once each, in {template!r}")
    if "date" not in names and ("year" not in names or ("day" in names and "month" not in names)):
        raise ValueError(f"{template!r} needs {{year}} (and {{month}} before {{day}})")
    pieces = _PLACEHOLDER.split(template)  # literal, name, literal, name, ...
    regex = "".join(re.escape(p) if i % 2 == 0 else _PARTITION_PARTS[p] for i, p in enumerate(pieces))
    return re.compile(regex)


def partition_date(match: re.Match[str]) -> date:
    found = match.groupdict()
    if found.get("date"):
        return date.fromisoformat(found["date"])
    return date(int(found["year"]), int(found.get("month") or 1), int(found.get("day") or 1))


# -- URL ----------------------------------------------------------------------------------------


def parse_s3_url(url: str, name: str) -> S3Location:
    """``s3://bucket/prefix?region=...&endpoint_url=...`` -> S3Location (ConfigError when malformed)."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ConfigError(
            f"connection {name!r}: an s3:// URL carries no credentials; set ETL_CONN_{name.upper()}_ACCESS_KEY_ID "
            f"and ETL_CONN_{name.upper()}_SECRET_ACCESS_KEY instead"
        )
    bucket = parts.netloc
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
        raise ConfigError(f"connection {name!r}: {bucket!r} is not an S3 bucket name (expected s3://bucket/prefix)")
    prefix = unquote(parts.path).strip("/")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(query) - URL_OPTIONS
    if unknown:
        raise ConfigError(
            f"connection {name!r}: unknown URL option(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(URL_OPTIONS))})"
        )
    endpoint = query.get("endpoint_url") or None
    if endpoint and not re.match(r"^https?://", endpoint):
        raise ConfigError(f"connection {name!r}: endpoint_url must start with http:// or https://")
    attempts = query.get("max_attempts", "3")
    if not attempts.isdigit() or not 1 <= int(attempts) <= 20:
        raise ConfigError(f"connection {name!r}: max_attempts must be a whole number from 1 to 20")
    style = query.get("addressing_style") or None
    if style not in (None, "auto", "path", "virtual"):
        raise ConfigError(f"connection {name!r}: addressing_style must be auto, path or virtual")
    return S3Location(
        bucket=bucket,
        prefix=f"{prefix}/" if prefix else "",
        region=query.get("region") or None,
        endpoint_url=endpoint,
        max_attempts=int(attempts),
        addressing_style=style,
    )


def meta_values(obj: S3Object, names: tuple[str, ...]) -> Row:
    values = {SOURCE_KEY: obj.key, SOURCE_MODIFIED: obj.modified, SOURCE_PARTITION: obj.partition}
    return tuple(values[n] for n in names)


def select_objects(objects: list[S3Object], request: ReadRequest) -> list[S3Object]:
    """The objects to read: all of them, or (cursor on object metadata) those inside the window."""
    if not (request.filtered and request.cursor in (SOURCE_MODIFIED, SOURCE_PARTITION)):
        return objects
    pick = (lambda o: o.modified) if request.cursor == SOURCE_MODIFIED else (lambda o: o.partition)
    return [o for o in objects if in_window(pick(o), request.window_start, request.window_end)]


def row_filter(columns: list[str], request: ReadRequest, name: str) -> Callable[[Row], bool] | None:
    """The row filter for a window on a data column, or None (no window, or objects already filtered)."""
    if not (request.filtered and request.cursor) or request.cursor in META_COLUMNS:
        return None
    lowered = [c.lower() for c in columns]
    if request.cursor.lower() not in lowered:
        raise FatalError(
            f"S3 connection {name!r}: cursor column {request.cursor!r} is neither in the objects' columns "
            f"{columns} nor one of {SOURCE_MODIFIED}, {SOURCE_PARTITION}"
        )
    index = lowered.index(request.cursor.lower())
    start, end = request.window_start, request.window_end
    return lambda row: in_window(row[index], start, end)


def in_window(value: Any, start: Any, end: Any) -> bool:
    """``start < value <= end`` (``end`` None: no upper bound), comparing dates, naive and aware
    datetimes (naive means UTC), ISO text and integers sensibly."""
    if value is None:
        return False
    low, value_low = _comparable(start, value)
    if not value_low > low:
        return False
    if end is None:
        return True
    high, value_high = _comparable(end, value)
    return value_high <= high


def _comparable(bound: Any, value: Any) -> tuple[Any, Any]:
    if isinstance(bound, int) and isinstance(value, str):
        try:
            return bound, int(value)
        except ValueError:
            raise FatalError(f"cursor value {value!r} is not a whole number like the window bound {bound}") from None
    bound, value = as_datetime(bound), as_datetime(value)
    if isinstance(bound, datetime) and isinstance(value, datetime):
        if value.tzinfo is not None and bound.tzinfo is None:
            bound = bound.replace(tzinfo=UTC)
        elif value.tzinfo is None and bound.tzinfo is not None:
            bound = bound.astimezone(UTC).replace(tzinfo=None)
    return bound, value
