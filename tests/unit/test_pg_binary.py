"""The Arrow -> PostgreSQL binary COPY type map (connectors.pg_binary): which Arrow column goes on the
wire as which type for a target column, and which has no exact binary form (the load writes CSV)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from connectors import pg_binary as pb
from connectors.pg_binary import DECIMAL_SCALE, BinaryEncoder, TargetColumn, Wire, wire_for
from utilities.errors import FatalError


def target(oid: int, name: str = "t") -> TargetColumn:
    return TargetColumn("x", oid, name)


@pytest.mark.parametrize(
    ("arrow", "oid", "wire"),
    [
        (pa.int8(), pb.INT2, Wire(pa.int16())),
        (pa.uint8(), pb.INT2, Wire(pa.int16())),
        (pa.int16(), pb.INT2, Wire(pa.int16())),
        (pa.int32(), pb.INT4, Wire(pa.int32())),
        (pa.uint16(), pb.INT4, Wire(pa.int32())),
        (pa.int16(), pb.INT8, Wire(pa.int64())),
        (pa.uint32(), pb.INT8, Wire(pa.int64())),
        (pa.int64(), pb.INT8, Wire(pa.int64())),
        (pa.bool_(), pb.BOOL, Wire(pa.bool_())),
        (pa.int8(), pb.BOOL, Wire(pa.bool_(), bool_from_int=True)),
        (pa.float32(), pb.FLOAT4, Wire(pa.float32())),
        (pa.float32(), pb.FLOAT8, Wire(pa.float64())),
        (pa.float64(), pb.FLOAT8, Wire(pa.float64())),
        (pa.decimal128(12, 2), pb.NUMERIC, Wire(pa.decimal128(12, 2))),
        (pa.uint64(), pb.NUMERIC, Wire(pa.decimal128(20, 0))),
        (pa.string(), pb.TEXT, Wire(pa.string())),
        (pa.string(), pb.VARCHAR, Wire(pa.string())),
        (pa.large_string(), pb.BPCHAR, Wire(pa.large_string())),
        (pa.string(), pb.JSON, Wire(pa.string())),
        (pa.string(), pb.JSONB, Wire(pa.string(), jsonb=True)),
        (pa.large_binary(), pb.BYTEA, Wire(pa.large_binary())),
        (pa.date32(), pb.DATE, Wire(pa.date32())),
        (pa.time64("us"), pb.TIME, Wire(pa.time64("us"))),
        (pa.time32("s"), pb.TIME, Wire(pa.time64("us"))),
        (pa.timestamp("us"), pb.TIMESTAMP, Wire(pa.timestamp("us"))),
        (pa.timestamp("ms", tz="UTC"), pb.TIMESTAMPTZ, Wire(pa.timestamp("us", tz="UTC"))),
        (pa.timestamp("us"), pb.TIMESTAMPTZ, Wire(pa.timestamp("us"))),
    ],
)
def test_exact_wire_forms(arrow: pa.DataType, oid: int, wire: Wire) -> None:
    assert wire_for(pa.field("x", arrow), target(oid)) == wire


@pytest.mark.parametrize(
    ("arrow", "oid", "why"),
    [
        (pa.int32(), pb.INT2, "int32 may not fit t"),  # the server would refuse out-of-range values in text
        (pa.uint32(), pb.INT4, "uint32 may not fit t"),
        (pa.uint64(), pb.INT8, "uint64 may not fit t"),
        (pa.float64(), pb.FLOAT4, "double has no exact binary form for t"),  # rounding may differ
        (pa.int64(), pb.FLOAT8, "int64 has no exact binary form for t"),
        (pa.string(), pb.INT4, "string has no exact binary form for t"),
        (pa.string(), pb.DATE, "string has no exact binary form for t"),
        (pa.int32(), pb.DATE, "int32 has no exact binary form for t"),  # days since 1970, never since 2000
        (pa.date64(), pb.DATE, "date64[ms] has no exact binary form for t"),
        (pa.timestamp("ns"), pb.TIMESTAMP, "timestamp[ns] has no exact binary form for t"),  # text rounds
        (pa.time64("ns"), pb.TIME, "time64[ns] has no exact binary form for t"),
        (pa.string(), 2950, "string has no exact binary form for t"),  # uuid: not mapped
        (pa.decimal256(50, 2), pb.NUMERIC, "decimal256(50, 2) has no exact binary form for numeric"),
        (pa.int32(), pb.TEXT, "int32 has no exact binary form for t"),
    ],
)
def test_no_exact_wire_form(arrow: pa.DataType, oid: int, why: str) -> None:
    assert wire_for(pa.field("x", arrow), target(oid)) == why


def test_decimal_text_needs_its_source_scale() -> None:
    """MySQL DECIMAL read as text: only with the scale the source declared (connectors.mysql sets it)."""
    plain = pa.field("x", pa.string())
    assert isinstance(wire_for(plain, target(pb.NUMERIC)), str)
    marked = plain.with_metadata({DECIMAL_SCALE: b"2"})
    assert wire_for(marked, target(pb.NUMERIC)) == Wire(pa.decimal128(38, 2))


def test_the_encoder_refuses_an_integer_other_than_0_or_1_for_a_boolean() -> None:
    encoder = BinaryEncoder([Wire(pa.bool_(), bool_from_int=True)], ["paid"])
    ok = pa.record_batch([pa.array([0, 1, None], pa.int8())], names=["paid"])
    header = encoder.header()
    assert len(header + encoder.encode(ok) + encoder.finish()) > len(header)
    with pytest.raises(FatalError, match="column paid holds 2, which is no boolean"):
        encoder.encode(pa.record_batch([pa.array([1, 2], pa.int8())], names=["paid"]))
    with pytest.raises(FatalError, match="column paid holds -1"):
        encoder.encode(pa.record_batch([pa.array([-1, 0], pa.int8())], names=["paid"]))
