"""Loads into BigQuery: rows spooled to newline-delimited JSON, one load job into a staging table,
then one multi-statement transaction that runs the operations changing the target.

The target is untouched until that transaction commits, so a failure or a kill at any point leaves
it as it was. The staging table is dropped afterwards, and expires after a day should the process
die before dropping it. What each strategy does is decided in script_factory/load_strategies.py.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, TYPE_CHECKING, Any

from connectors import bigquery_sql as bq
from connectors.base import LoadStats, RowStream
from connectors.target import (
    STAGE,
    CheckKeys,
    KeyReport,
    LoadSession,
    LoadTarget,
    Operation,
    Tracker,
    WriteRows,
    match_columns,
    respell,
    spelled,
)
from utilities.errors import FatalError

if TYPE_CHECKING:
    from connectors.bigquery import BigQueryConnector
    from utilities.progress import Progress

logger = logging.getLogger(__name__)

STAGE_LIFETIME = timedelta(days=1)
Encoder = Callable[[Any], Any]


@contextmanager
def open_load(connector: BigQueryConnector, target: LoadTarget) -> Iterator[BigQueryLoadSession]:
    """A session on a new staging table; the gathered statements run as one transaction script when
    the block ends cleanly, and not at all if it raises. The staging table is dropped either way."""
    from google.cloud import bigquery

    target_path = connector.table_path(target.table)  # checks that a dataset is named
    project = connector.target.project
    dataset = target.table.schema or connector.target.dataset or ""
    with connector.translate_errors(f"read table {target.table}"):
        schema = _target_schema(connector, target)
    fields = _stage_fields(schema, target)
    stage_ref = bigquery.TableReference(
        bigquery.DatasetReference(project, dataset), f"_etl_stage_{target.table.name}_{uuid.uuid4().hex[:12]}"
    )
    session = BigQueryLoadSession(
        connector, target, fields, stage_ref, bq.table_path(project, dataset, stage_ref.table_id)
    )
    with connector.translate_errors(f"load into {target.table}"):
        _create_stage(connector, stage_ref, fields)
        try:
            yield session
            connector.run(
                bq.transaction(
                    [bq.operation_statement(op, target_path, session.stage, session.columns) for op in session.pending]
                )
            )
        finally:
            _drop_stage(connector, stage_ref)


class BigQueryLoadSession(LoadSession):
    """Stages rows with one load job, reports keys, and gathers the operations for the commit."""

    def __init__(
        self, connector: BigQueryConnector, target: LoadTarget, fields: list[Any], stage_ref: Any, stage: str
    ) -> None:
        self.connector = connector
        self.target = target
        self.fields = fields
        self.columns = [field.name for field in fields]
        self.stage_ref = stage_ref
        self.stage = stage
        self.pending: list[Operation] = []

    def write_rows(self, stream: RowStream, op: WriteRows, progress: Progress) -> LoadStats:
        if op.into != STAGE:
            raise FatalError(f"load into {self.target.table}: BigQuery writes rows through its staging table")
        rows = Tracker(stream, self.target.cursor, progress)
        with tempfile.TemporaryFile() as spool:
            if _spool(rows, self.fields, spool):
                _load_stage(self.connector, spool, self.stage_ref, self.fields)
        return rows.stats

    def key_report(self, op: CheckKeys) -> KeyReport:
        keys = [spelled(self.columns, k) for k in op.keys]
        nulls = next(iter(self.connector.run(bq.null_keys_query(self.stage, keys))))[0]
        duplicates = self.connector.run(bq.duplicate_keys_query(self.stage, keys))
        return KeyReport(int(nulls), tuple(tuple(row.values()) for row in duplicates))

    def apply(self, op: Operation) -> None:
        self.pending.append(respell(op, self.columns))


def _target_schema(connector: BigQueryConnector, target: LoadTarget) -> list[Any]:
    from google.api_core.exceptions import NotFound

    dataset = target.table.schema or connector.target.dataset
    reference = f"{connector.target.project}.{dataset}.{target.table.name}"
    try:
        return list(connector.client.get_table(reference, retry=connector.retry, timeout=connector.timeout).schema)
    except NotFound:
        raise FatalError(
            f"target table {target.table} does not exist in {connector.kind} connection {connector.name!r} "
            f"(project {connector.target.project}, dataset {dataset}); create it first"
        ) from None


def _stage_fields(schema: Sequence[Any], target: LoadTarget) -> list[Any]:
    """The target's fields for each source column, in source order, all NULLABLE (the target's own
    REQUIRED columns still refuse NULLs when the transaction inserts)."""
    from google.cloud.bigquery import SchemaField

    fields = []
    for field in match_columns(target.columns, {f.name: f for f in schema}, target, "add it to the table"):
        resource = field.to_api_repr()
        if resource.get("mode") == "REQUIRED":
            resource["mode"] = "NULLABLE"
        fields.append(SchemaField.from_api_repr(resource))
    return fields


def _create_stage(connector: BigQueryConnector, reference: Any, fields: list[Any]) -> None:
    from google.cloud import bigquery

    table = bigquery.Table(reference, schema=fields)
    table.expires = datetime.now(UTC) + STAGE_LIFETIME
    # exists_ok: the name is unique, so an "already exists" can only be our own retried create
    connector.client.create_table(table, exists_ok=True, retry=connector.retry, timeout=connector.timeout)


def _load_stage(connector: BigQueryConnector, spool: IO[bytes], reference: Any, fields: list[Any]) -> None:
    """One load job: the spooled NDJSON into the staging table (a resumable upload)."""
    from google.cloud import bigquery

    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        schema=fields,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
    )
    spool.seek(0)
    job = connector.client.load_table_from_file(spool, reference, job_config=config, timeout=connector.timeout)
    job.result(retry=connector.retry)


def _drop_stage(connector: BigQueryConnector, reference: Any) -> None:
    """Drop the staging table; if that fails it expires on its own, so only warn."""
    import requests
    from google.api_core import exceptions as api

    try:
        connector.client.delete_table(reference, not_found_ok=True, retry=connector.retry, timeout=connector.timeout)
    except (api.GoogleAPICallError, api.RetryError, requests.RequestException) as exc:
        logger.warning("could not drop staging table %s (it expires within a day): %s", reference.table_id, exc)


# -- newline-delimited JSON -------------------------------------------------------------------


def _spool(chunks: Iterable[list[tuple[Any, ...]]], fields: Sequence[Any], handle: IO[bytes]) -> int:
    """Write every row as one JSON object per line, chunk by chunk; returns the number of rows."""
    names = [field.name for field in fields]
    encoders = [encoder(field.field_type) for field in fields]
    count = 0
    for chunk in chunks:
        lines = [json.dumps(_record(names, encoders, row, fields), ensure_ascii=False) for row in chunk]
        if lines:
            handle.write(("\n".join(lines) + "\n").encode("utf-8"))
            count += len(lines)
    return count


def _record(names: Sequence[str], encoders: Sequence[Encoder], row: Sequence[Any], fields: Sequence[Any]) -> dict:
    """One row as a JSON object; FatalError naming the column when a value cannot take its type."""
    record = {}
    for i, value in enumerate(row):
        try:
            record[names[i]] = None if value is None else encoders[i](value)
        except (TypeError, ValueError, UnicodeDecodeError):
            raise FatalError(
                f"column {names[i]!r}: a {type(value).__name__} value cannot be written as {fields[i].field_type}"
            ) from None
    return record


def encoder(field_type: str) -> Encoder:
    """How a Python value is written in a JSON load file for a column of ``field_type``."""
    return _ENCODERS.get(field_type.upper(), _as_is)


def _as_is(value: Any) -> Any:
    return value


def _integer(value: Any) -> Any:
    return value if isinstance(value, str) else int(value)


def _float(value: Any) -> Any:
    if isinstance(value, str):
        return value
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def _text(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _date(value: Any) -> Any:
    return value.date().isoformat() if isinstance(value, datetime) else _text(value)


def _datetime(value: Any) -> Any:
    """DATETIME is wall-clock time: an aware value is written in UTC."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return _text(value)


def _timestamp(value: Any) -> Any:
    """TIMESTAMP is an instant: a naive value is taken as UTC (as BigQuery does)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return _text(value)


def _bytes(value: Any) -> Any:
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes | bytearray) else value


def _json(value: Any) -> Any:
    return value if isinstance(value, str) else json.dumps(value, default=str)


_ENCODERS: dict[str, Encoder] = {
    "STRING": _text,
    "INTEGER": _integer,
    "INT64": _integer,
    "FLOAT": _float,
    "FLOAT64": _float,
    "NUMERIC": _text,
    "BIGNUMERIC": _text,
    "BOOLEAN": _as_is,
    "BOOL": _as_is,
    "DATE": _date,
    "DATETIME": _datetime,
    "TIMESTAMP": _timestamp,
    "TIME": _text,
    "BYTES": _bytes,
    "JSON": _json,
}
