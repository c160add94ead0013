"""Arrow record batches as PostgreSQL binary COPY, encoded by pgpq: each column is cast to the Arrow
type whose binary form is exactly its target column's type, or there is no encoder and the caller
writes CSV.

Binary COPY carries no type names: each target column's receive function reads the bytes as its own
type, so a mismatch is an error at best (int4 bytes into int8) and a wrong value at worst (int32 days
into a date). :func:`wire_for` therefore accepts only casts that are exact for every value, and only
for the types listed below; anything else keeps the CSV path, where PostgreSQL parses text. Typmods
(``numeric(12,2)``, ``varchar(60)``, ``char(2)``) are applied by the receive functions exactly as the
input functions apply them to text, so they need no cast here.

Sessions run in UTC (see ``PostgresConnector.engine_options``), so a naive timestamp means the same
instant in binary (microseconds taken as UTC) as in text (read in the session's zone).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from utilities.errors import FatalError

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy import Connection

logger = logging.getLogger(__name__)

#: field metadata naming the exact scale of a DECIMAL source column read as text (see connectors.mysql);
#: set only when every value fits Arrow's decimal128 (precision up to 38)
DECIMAL_SCALE = b"etl.decimal_scale"

BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON = 16, 17, 20, 21, 23, 25, 114
FLOAT4, FLOAT8, BPCHAR, VARCHAR, DATE, TIME = 700, 701, 1042, 1043, 1082, 1083
TIMESTAMP, TIMESTAMPTZ, NUMERIC, JSONB = 1114, 1184, 1700, 3802
TEXT_TYPES = {TEXT, VARCHAR, BPCHAR, JSON}  # json's binary form is its text
INTEGER_BITS = {INT2: 16, INT4: 32, INT8: 64}

TARGET_COLUMNS_SQL = (
    "SELECT attname, atttypid, format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = %(table)s::regclass AND attnum > 0 AND NOT attisdropped"
)


@dataclass(frozen=True)
class TargetColumn:
    """A column of the table COPY writes into: its name, type oid and type as PostgreSQL writes it."""

    name: str
    type_oid: int
    type_name: str


@dataclass(frozen=True)
class Wire:
    """How one Arrow column goes on the wire: cast to ``arrow_type``; ``jsonb`` adds jsonb's version
    byte; ``bool_from_int`` turns integers 0 and 1 into booleans (MySQL's TINYINT(1))."""

    arrow_type: Any  # pyarrow.DataType
    jsonb: bool = False
    bool_from_int: bool = False


def target_columns(conn: Connection, table: str, columns: Sequence[str]) -> list[TargetColumn]:
    """The type of each of ``columns`` of ``table`` (quoted; a temporary table included), in one query."""
    rows = conn.exec_driver_sql(TARGET_COLUMNS_SQL, {"table": table}).all()
    by_name = {str(name): TargetColumn(str(name), int(oid), str(kind)) for name, oid, kind in rows}
    return [by_name[c] for c in columns]


def wire_for(field: pa.Field, target: TargetColumn) -> Wire | str:
    """The exact wire form of Arrow ``field`` for ``target``, or in words why there is none."""
    import pyarrow as pa

    t, kind, oid = pa.types, field.type, target.type_oid
    unsigned = t.is_unsigned_integer(kind)
    if t.is_integer(kind) and oid in INTEGER_BITS:
        bits = kind.bit_width + (1 if unsigned else 0)  # uint32 needs 33 bits signed
        if bits <= INTEGER_BITS[oid]:
            return Wire(pa.int16() if oid == INT2 else pa.int32() if oid == INT4 else pa.int64())
        return f"{kind} may not fit {target.type_name}"
    if oid == BOOL:
        if t.is_boolean(kind):
            return Wire(pa.bool_())
        if t.is_integer(kind):
            return Wire(pa.bool_(), bool_from_int=True)
    if oid == FLOAT4 and (t.is_float32(kind) or t.is_float16(kind)):
        return Wire(pa.float32())
    if oid == FLOAT8 and t.is_floating(kind):
        return Wire(pa.float64())
    if oid == NUMERIC:
        return _numeric_wire(field)
    if oid in TEXT_TYPES | {JSONB} and (t.is_string(kind) or t.is_large_string(kind)):
        return Wire(kind, jsonb=oid == JSONB)
    if oid == BYTEA and (t.is_binary(kind) or t.is_large_binary(kind) or t.is_fixed_size_binary(kind)):
        return Wire(kind)
    if oid == DATE and t.is_date32(kind):
        return Wire(kind)
    if oid == TIME and t.is_time(kind) and kind.unit != "ns":
        return Wire(pa.time64("us"))
    if oid in (TIMESTAMP, TIMESTAMPTZ) and t.is_timestamp(kind) and kind.unit != "ns":
        return Wire(pa.timestamp("us", tz=kind.tz))
    return f"{kind} has no exact binary form for {target.type_name}"


def _numeric_wire(field: pa.Field) -> Wire | str:
    """numeric from a decimal (any scale: numeric_recv applies the target's typmod as numeric_in does),
    an integer (exactly, as decimal128(20, 0)), or decimal text whose source scale is known."""
    import pyarrow as pa

    t, kind = pa.types, field.type
    if t.is_decimal(kind) and kind.precision <= 38:
        return Wire(pa.decimal128(kind.precision, kind.scale))
    if t.is_integer(kind):
        return Wire(pa.decimal128(20, 0))
    scale = (field.metadata or {}).get(DECIMAL_SCALE)
    if scale is not None and (t.is_string(kind) or t.is_large_string(kind)):
        return Wire(pa.decimal128(38, int(scale)))
    if t.is_string(kind) or t.is_large_string(kind):
        return "text (or a DECIMAL wider than 38 digits, read as text) has no exact binary form for numeric"
    return f"{kind} has no exact binary form for numeric"


class BinaryEncoder:
    """Arrow batches -> binary COPY bytes for one COPY: :meth:`header`, :meth:`encode` per batch, :meth:`finish`."""

    def __init__(self, wires: Sequence[Wire], columns: Sequence[str]) -> None:
        import pgpq
        import pyarrow as pa
        from pgpq import encoders, schema

        self._wires = list(wires)
        self._columns = list(columns)
        self._schema = pa.schema([pa.field(f"c{i}", w.arrow_type) for i, w in enumerate(self._wires)])
        builders: dict[str, Any] = {
            f.name: encoders.StringEncoderBuilder.new_with_output(f, schema.Jsonb())
            if pa.types.is_string(f.type)
            else encoders.LargeStringEncoderBuilder.new_with_output(f, schema.Jsonb())
            for f, w in zip(self._schema, self._wires, strict=True)
            if w.jsonb
        }
        for f in self._schema:
            builders.setdefault(f.name, pgpq.ArrowToPostgresBinaryEncoder.infer_encoder(f))
        self._encoder = pgpq.ArrowToPostgresBinaryEncoder.new_with_encoders(self._schema, builders)

    def header(self) -> bytes:
        return bytes(self._encoder.write_header())

    def finish(self) -> bytes:
        return bytes(self._encoder.finish())

    def encode(self, batch: pa.RecordBatch) -> bytes:
        """One batch's rows (the columns in the order the encoder was built for)."""
        import pyarrow as pa

        arrays = [self._cast(batch.column(i), w, i) for i, w in enumerate(self._wires)]
        return bytes(self._encoder.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema)))

    def _cast(self, array: Any, wire: Wire, index: int) -> Any:
        import pyarrow.compute as pc

        if wire.bool_from_int:
            low, high = pc.min_max(array).values()
            if low.is_valid and (low.as_py() < 0 or high.as_py() > 1):
                bad = low.as_py() if low.as_py() < 0 else high.as_py()
                raise FatalError(
                    f"column {self._columns[index]} holds {bad}, which is no boolean (only 0 and 1 are); "
                    f"make the target column an integer, or map the value in a query: file"
                )
            return pc.not_equal(array, 0)
        if array.type == wire.arrow_type:
            return array
        return array.cast(wire.arrow_type)  # safe: raises rather than change a value


def binary_encoder(
    conn: Connection, table: str, columns: Sequence[str], schema: pa.Schema, connection: str
) -> BinaryEncoder | None:
    """The encoder for ``schema`` into ``columns`` of ``table`` (quoted), or None, logged with the reason,
    when pgpq is missing or a column has no exact binary form (the caller then writes CSV)."""
    try:
        import pgpq  # noqa: F401
    except ImportError:
        logger.info("%s: pgpq is not installed; writing CSV to COPY", connection)
        return None
    targets = target_columns(conn, table, columns)
    wires: list[Wire] = []
    for field, target in zip(schema, targets, strict=True):
        wire = wire_for(field, target)
        if isinstance(wire, str):
            logger.info("%s: column %s: %s; writing CSV to COPY", connection, target.name, wire)
            return None
        wires.append(wire)
    return BinaryEncoder(wires, columns)
