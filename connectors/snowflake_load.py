"""Loads into a Snowflake table: Parquet files, a table stage, COPY INTO a staging table, one transaction.

1. The target's columns are read from INFORMATION_SCHEMA (its name matched case-insensitively).
2. A TEMPORARY staging table ``LIKE`` the target and a TEMPORARY stage are created in the
   connection's schema; both go away with the session (the role needs CREATE TABLE and CREATE
   STAGE there).
3. Every chunk is written as a Parquet file typed by the target's columns and PUT on the stage;
   one COPY INTO (with PURGE) loads them all into the staging table. This is the path the driver's
   own ``write_pandas`` takes, without needing pandas.
4. The operations that change the target (script_factory/load_strategies.py decides them) are
   rendered as statements and run at the end of the session: ``BEGIN``, the statements, ``COMMIT``.

Nothing touches the target before step 4, and step 4 is one transaction (ROLLBACK on any error), so
a failure at any point leaves the target as it was. A merge is delete by key + insert (the same
result as MERGE with every column updated). Emptying the table is DELETE, not TRUNCATE, so that it
rolls back too.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.base import Chunk, LoadStats, RowStream
from connectors.target import (
    STAGE,
    CheckKeys,
    DeleteByKeys,
    DeleteWindow,
    EmptyTable,
    InsertFromStage,
    KeyReport,
    LoadSession,
    LoadTarget,
    Operation,
    Tracker,
    WriteRows,
    match_columns,
)
from utilities.errors import FatalError

if TYPE_CHECKING:
    from connectors.snowflake import SnowflakeConnector
    from utilities.progress import Progress

logger = logging.getLogger(__name__)

Statement = tuple[str, Sequence[Any]]
JSON_TYPES = {"VARIANT", "OBJECT", "ARRAY"}


@dataclass(frozen=True)
class TargetColumn:
    """A target column as INFORMATION_SCHEMA describes it."""

    name: str
    data_type: str
    precision: int | None = None
    scale: int | None = None

    @property
    def sql_type(self) -> str:
        """The type the staged value is cast to in COPY INTO."""
        if self.data_type == "NUMBER":
            return f"NUMBER({self.precision or 38},{self.scale or 0})"
        return "VARCHAR" if self.data_type == "TEXT" else self.data_type


@dataclass(frozen=True)
class Target:
    schema: str
    name: str
    columns: tuple[TargetColumn, ...]

    @property
    def sql(self) -> str:
        return f"{quote(self.schema)}.{quote(self.name)}"


@contextmanager
def open_load(connector: SnowflakeConnector, target: LoadTarget) -> Iterator[SnowflakeLoadSession]:
    """A session on a temporary staging table ``LIKE`` the target; its statements run in one
    transaction when the block ends cleanly, and not at all if it raises."""
    conn = connector.connection
    with connector.translate_errors(f"load into {target.table}"):
        cursor = conn.cursor()
        try:
            table = find_target(cursor, target, connector.parts.schema, connector.name)
            session = SnowflakeLoadSession(cursor, table, map_columns(target, table), target)
            cursor.execute(f"CREATE TEMPORARY TABLE {quote(session.stage)} LIKE {table.sql}")
            try:
                cursor.execute(f"CREATE TEMPORARY STAGE {quote(session.stage)}")
                yield session
                run_in_transaction(cursor, session.statements)
            finally:
                _drop_quietly(cursor, session.stage)
        finally:
            cursor.close()


class SnowflakeLoadSession(LoadSession):
    """Stages rows, reports keys, and gathers the statements that change the target."""

    def __init__(self, cursor: Any, table: Target, columns: list[TargetColumn], target: LoadTarget) -> None:
        self.cursor = cursor
        self.table = table
        self.columns = columns
        self.target = target
        self.stage = f"ETL_STAGE_{table.name[:100]}_{uuid.uuid4().hex[:8]}".upper()
        self.statements: list[Statement] = []

    def write_rows(self, stream: RowStream, op: WriteRows, progress: Progress) -> LoadStats:
        if op.into != STAGE:
            raise FatalError(f"load into {self.target.table}: Snowflake writes rows through its staging table")
        rows = Tracker(stream, self.target.cursor, progress)
        staged = stage_rows(self.cursor, self.stage, self.columns, iter(rows), f"load into {self.target.table}")
        if staged != rows.stats.rows:
            raise FatalError(
                f"load into {self.target.table}: COPY INTO loaded {staged} of {rows.stats.rows} rows; "
                f"nothing was written"
            )
        return rows.stats

    def key_report(self, op: CheckKeys) -> KeyReport:
        keys = ", ".join(quote(_column(self.table, k).name) for k in op.keys)
        nulls = " OR ".join(f"{quote(_column(self.table, k).name)} IS NULL" for k in op.keys)
        self.cursor.execute(f"SELECT COUNT(*) FROM {quote(self.stage)} WHERE {nulls}")
        null_rows = int(self.cursor.fetchone()[0])
        self.cursor.execute(
            f"SELECT {keys} FROM {quote(self.stage)} GROUP BY {keys} HAVING COUNT(*) > 1 ORDER BY {keys} LIMIT 3"
        )
        return KeyReport(null_rows, tuple(tuple(row) for row in self.cursor.fetchall()))

    def apply(self, op: Operation) -> None:
        self.statements.append(render(op, self.table, self.stage, self.columns, self.target))


def quote(name: str) -> str:
    """An identifier quoted exactly as spelled (for names read back from Snowflake itself)."""
    return '"' + name.replace('"', '""') + '"'


# -- the target ---------------------------------------------------------------------------------


def find_target(cursor: Any, target: LoadTarget, default_schema: str, connection: str) -> Target:
    """The target table and its columns; FatalError naming it when it does not exist.

    The name is matched case-insensitively; when several tables differ only in case, the upper-case
    spelling (an unquoted name) wins, then the spelling written in project.yml.
    """
    schema = target.table.schema or default_schema
    cursor.execute(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE "
        "FROM INFORMATION_SCHEMA.COLUMNS WHERE UPPER(TABLE_SCHEMA) = UPPER(?) AND UPPER(TABLE_NAME) = UPPER(?) "
        "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        [schema, target.table.name],
    )
    tables: dict[tuple[str, str], list[TargetColumn]] = {}
    for table_schema, table_name, column, data_type, precision, scale in cursor.fetchall():
        tables.setdefault((table_schema, table_name), []).append(TargetColumn(column, data_type, precision, scale))
    if not tables:
        raise FatalError(
            f"target table {target.table} does not exist in Snowflake connection {connection!r}; "
            f"create it first (Snowflake DDL is not applied by the warehouse ddl: list)"
        )
    for wanted in ((schema.upper(), target.table.name.upper()), (schema, target.table.name)):
        if wanted in tables:
            return Target(wanted[0], wanted[1], tuple(tables[wanted]))
    if len(tables) > 1:
        raise FatalError(f"target table {target.table} matches tables that differ only in case: {sorted(tables)}")
    (found_schema, found_name), found = next(iter(tables.items()))
    return Target(found_schema, found_name, tuple(found))


def map_columns(target: LoadTarget, table: Target) -> list[TargetColumn]:
    """The table's column for each source column (matched case-insensitively), in source order."""
    return match_columns(target.columns, {c.name: c for c in table.columns}, target, "add it to the table")


def _column(target: Target, name: str) -> TargetColumn:
    return next(c for c in target.columns if c.name.upper() == name.upper())


# -- staging ------------------------------------------------------------------------------------


def stage_rows(cursor: Any, stage: str, columns: Sequence[TargetColumn], chunks: Iterator[Chunk], where: str) -> int:
    """PUT every chunk as a Parquet file on the temporary stage ``stage``, then COPY them all into
    the staging table of the same name.

    Returns the number of rows COPY INTO reports as loaded.
    """
    files = 0
    with tempfile.TemporaryDirectory(prefix="etl_snowflake_") as folder:
        for chunk in chunks:
            if not chunk:
                continue
            files += 1
            path = Path(folder) / f"part_{files:06d}.parquet"
            write_parquet(path, chunk, columns, where)
            cursor.execute(f"PUT {_file_url(path)} @{quote(stage)} AUTO_COMPRESS = FALSE")
            path.unlink()
    if not files:
        return 0
    names = ", ".join(quote(c.name) for c in columns)
    values = ", ".join(_staged_value(i, c) for i, c in enumerate(columns))
    cursor.execute(
        f"COPY INTO {quote(stage)} ({names}) FROM (SELECT {values} FROM @{quote(stage)}) "
        f"FILE_FORMAT = (TYPE = PARQUET USE_LOGICAL_TYPE = TRUE BINARY_AS_TEXT = FALSE) PURGE = TRUE"
    )
    header = [d[0].lower() for d in cursor.description]
    loaded = header.index("rows_loaded")
    return sum(int(row[loaded] or 0) for row in cursor.fetchall())


def _staged_value(index: int, column: TargetColumn) -> str:
    """``$1:c0::NUMBER(12,2)``: the Parquet field of position ``index`` cast to the column's type."""
    if column.data_type in JSON_TYPES:
        return f"PARSE_JSON($1:c{index}::VARCHAR)"
    return f"$1:c{index}::{column.sql_type}"


def _file_url(path: Path) -> str:
    """``'file:///tmp/.../part.parquet'`` as a SQL string literal (PUT takes no bind parameters)."""
    text = "file://" + path.as_posix()  # file:///tmp/x, or file://C:/Users/x on Windows
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def write_parquet(path: Path, chunk: Chunk, columns: Sequence[TargetColumn], where: str = "load") -> None:
    """One chunk as a Parquet file whose fields c0, c1, ... are typed like the target columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [to_arrow([row[i] for row in chunk], column, where) for i, column in enumerate(columns)]
    pq.write_table(pa.table(arrays, names=[f"c{i}" for i in range(len(columns))]), path)


def arrow_type(column: TargetColumn) -> Any:
    """The Arrow type a value for ``column`` is written as."""
    import pyarrow as pa

    kind = column.data_type
    if kind == "NUMBER":
        return pa.decimal128(column.precision or 38, column.scale or 0)
    simple = {
        "FLOAT": pa.float64(),
        "BOOLEAN": pa.bool_(),
        "DATE": pa.date32(),
        "TIME": pa.time64("us"),
        "TIMESTAMP_NTZ": pa.timestamp("us"),
        "TIMESTAMP_LTZ": pa.timestamp("us", tz="UTC"),
        "TIMESTAMP_TZ": pa.timestamp("us", tz="UTC"),
        "BINARY": pa.binary(),
    }
    return simple.get(kind, pa.string())


def to_arrow(values: list[Any], column: TargetColumn, where: str = "load") -> Any:
    """``values`` as an Arrow array of the column's type; FatalError naming the column if one does not fit.

    Driver values of the right kind convert directly; others (text dates from SQLite, 0/1 flags,
    floats for a NUMBER(12,2)) are parsed as the target would parse their text.
    """
    import pyarrow as pa

    target_type = arrow_type(column)
    if column.data_type == "NUMBER":
        values = [_decimal(v, column, where) for v in values]
    elif pa.types.is_string(target_type):
        values = [_text(v, column.data_type in JSON_TYPES) for v in values]
    try:
        return pa.array(values, type=target_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    parse = _PARSERS.get(column.data_type.split("_")[0], str)
    value = None
    try:
        parsed = [None if (value := v) is None else parse(v) for v in values]
        return pa.array(parsed, type=target_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise FatalError(
            f"{where}: column {column.name} ({column.data_type}) cannot hold {value!r} "
            f"({type(value).__name__}): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc


def _parse_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value).strip())


def _parse_date(value: Any) -> date:
    return value if isinstance(value, date) and not isinstance(value, datetime) else _parse_timestamp(value).date()


def _parse_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    return value.time() if isinstance(value, datetime) else time.fromisoformat(str(value).strip())


def _parse_boolean(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "t", "yes", "y", "on", "1"):
        return True
    if text in ("false", "f", "no", "n", "off", "0"):
        return False
    raise ValueError("not a boolean")


def _parse_binary(value: Any) -> bytes:
    """Bytes as they are; text as hexadecimal, Snowflake's default BINARY_INPUT_FORMAT."""
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else bytes.fromhex(str(value))


#: by the data type's first word (TIMESTAMP_NTZ -> TIMESTAMP)
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "TIMESTAMP": _parse_timestamp,
    "DATE": _parse_date,
    "TIME": _parse_time,
    "BOOLEAN": _parse_boolean,
    "FLOAT": float,
    "BINARY": _parse_binary,
}


def _decimal(value: Any, column: TargetColumn, where: str) -> Any:
    """A value for NUMBER(p,s), rounded half away from zero to the scale as Snowflake rounds."""
    if value is None or isinstance(value, bool):
        return value
    try:
        number = Decimal(value) if isinstance(value, int | Decimal) else Decimal(str(value).strip())
        return number.quantize(Decimal(1).scaleb(-(column.scale or 0)), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        raise FatalError(f"{where}: column {column.name} (NUMBER): {value!r} is not a number") from None


def _text(value: Any, as_json: bool) -> Any:
    if value is None or isinstance(value, str):
        return value
    if as_json or isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | time):
        return value.isoformat(" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


# -- applying -----------------------------------------------------------------------------------


def render(op: Operation, table: Target, stage: str, columns: Sequence[TargetColumn], target: LoadTarget) -> Statement:
    """One operation as a Snowflake statement (``?`` placeholders) and its values."""
    names = ", ".join(quote(c.name) for c in columns)
    if isinstance(op, EmptyTable):
        return f"DELETE FROM {table.sql}", []
    if isinstance(op, DeleteWindow):
        cursor = quote(_column(table, op.bounds.cursor).name)
        if op.bounds.end is None:
            return f"DELETE FROM {table.sql} WHERE {cursor} > ?", [op.bounds.start]
        return f"DELETE FROM {table.sql} WHERE {cursor} > ? AND {cursor} <= ?", [op.bounds.start, op.bounds.end]
    if isinstance(op, DeleteByKeys):
        keys = [quote(_column(table, k).name) for k in op.keys]
        match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        return f"DELETE FROM {table.sql} AS t USING {quote(stage)} AS s WHERE {match}", []
    if isinstance(op, InsertFromStage):
        return f"INSERT INTO {table.sql} ({names}) SELECT {names} FROM {quote(stage)}", []
    raise FatalError(f"load into {target.table}: Snowflake does not run {type(op).__name__} here")


def run_in_transaction(cursor: Any, statements: Sequence[Statement]) -> None:
    """``BEGIN``, the statements, ``COMMIT``; ``ROLLBACK`` and re-raise on any error."""
    cursor.execute("BEGIN")
    try:
        for sql, values in statements:
            cursor.execute(sql, values)
    except BaseException:
        try:
            cursor.execute("ROLLBACK")
        except Exception as exc:  # noqa: BLE001 - the first error is the one to report
            logger.warning("ROLLBACK failed after a load error (Snowflake rolls back when the session ends): %s", exc)
        raise
    cursor.execute("COMMIT")


def _drop_quietly(cursor: Any, stage: str) -> None:
    """Drop the staging table; a failure here must not hide the load's own error (it is temporary anyway).

    The stage is left to the end of the session: COPY has purged its files (fakesnow cannot DROP STAGE).
    """
    try:
        cursor.execute(f"DROP TABLE IF EXISTS {quote(stage)}")
    except Exception as exc:  # noqa: BLE001 - see docstring
        logger.warning("could not drop staging table %s (it goes away with the session): %s", stage, exc)
