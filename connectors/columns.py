"""Column descriptions: what a source says its columns are, as portable SQLAlchemy types.

A source describes its columns (``Connector.describe_columns``) so that a missing target table can be
created from them and an existing one compared with them (``script_factory/schema.py``). The types
are SQLAlchemy's generic types (``Numeric(38, 10)``, ``DateTime(timezone=True)``...), which each
target dialect renders in its own words; :func:`portable` turns a reflected dialect type (MySQL's
``TINYINT(1)``, PostgreSQL's ``TIMESTAMP(precision=3)``) into one of them, following the type map
of the README ("Type mapping to PostgreSQL"). :func:`parse_type` reads the type names written in
project.yml (``cast: numeric(12,2)``), :func:`type_text` writes one back for messages and the ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from utilities.errors import ConfigError
from utilities.lazy import lazy_module

if TYPE_CHECKING:
    import sqlalchemy.types as sat
else:
    sat = lazy_module("sqlalchemy.types")  # imported when a type is first built or compared


@dataclass(frozen=True)
class SourceColumn:
    """One column a source returns: its name, its portable type, whether it may be NULL."""

    name: str
    type: sat.TypeEngine[Any]
    nullable: bool = True


# -- project.yml type names -----------------------------------------------------------------------

_TYPE = re.compile(r"^\s*([a-z_][a-z0-9_ ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")

TYPE_NAMES = (
    "smallint, integer, bigint, numeric(p,s), real, double, boolean, text, varchar(n), date, time, "
    "timestamp, timestamptz, interval, bytea, json, uuid"
)


def parse_type(text: str, where: str = "type") -> sat.TypeEngine[Any]:
    """The SQLAlchemy type named by ``text`` (PostgreSQL's spelling, case-insensitive); ConfigError
    naming ``where`` and the known names otherwise."""
    match = _TYPE.match(str(text).lower())
    if match is None:
        raise ConfigError(f"{where}: {text!r} is not a type; expected one of {TYPE_NAMES}")
    name, first, second = match.group(1), match.group(2), match.group(3)
    p = int(first) if first is not None else None
    s = int(second) if second is not None else None
    simple: dict[str, sat.TypeEngine[Any]] = {
        "smallint": sat.SmallInteger(),
        "int2": sat.SmallInteger(),
        "integer": sat.Integer(),
        "int": sat.Integer(),
        "int4": sat.Integer(),
        "bigint": sat.BigInteger(),
        "int8": sat.BigInteger(),
        "real": sat.REAL(),
        "float4": sat.REAL(),
        "double": sat.Double(),
        "double precision": sat.Double(),
        "float8": sat.Double(),
        "float": sat.Double(),
        "boolean": sat.Boolean(),
        "bool": sat.Boolean(),
        "text": sat.Text(),
        "string": sat.Text(),
        "date": sat.Date(),
        "time": sat.Time(),
        "timestamp": sat.DateTime(),
        "datetime": sat.DateTime(),
        "timestamptz": sat.DateTime(timezone=True),
        "timestamp with time zone": sat.DateTime(timezone=True),
        "interval": sat.Interval(),
        "bytea": sat.LargeBinary(),
        "binary": sat.LargeBinary(),
        "json": json_type(),
        "jsonb": json_type(),
        "uuid": sat.Uuid(as_uuid=False),
    }
    if name in ("numeric", "decimal"):
        if p is None:
            return sat.Numeric()
        if not 1 <= p <= 1000 or (s is not None and not 0 <= s <= p):
            raise ConfigError(f"{where}: {text!r}: expected numeric(p,s) with 1 <= p <= 1000 and 0 <= s <= p")
        return sat.Numeric(p, s or 0)
    if name in ("varchar", "character varying", "char", "character"):
        if p is None:
            return sat.Text()
        if p < 1 or s is not None:
            raise ConfigError(f"{where}: {text!r}: expected varchar(n) with n >= 1")
        return sat.String(p) if name.startswith("var") or name == "character varying" else sat.CHAR(p)
    if name in ("timestamp", "timestamptz") and p is not None:
        return _with_precision(sat.DateTime(timezone=name == "timestamptz"), p)
    if name in simple and first is None:
        return simple[name]
    raise ConfigError(f"{where}: {text!r} is not a type; expected one of {TYPE_NAMES}")


def _with_precision(kind: sat.DateTime, precision: int) -> sat.TypeEngine[Any]:
    """A timestamp with fractional-second ``precision`` (kept on PostgreSQL and MySQL)."""
    from sqlalchemy.dialects import mysql, postgresql

    return kind.with_variant(
        postgresql.TIMESTAMP(timezone=kind.timezone, precision=precision), "postgresql"
    ).with_variant(mysql.DATETIME(fsp=precision), "mysql", "mariadb")


def json_type() -> sat.TypeEngine[Any]:
    """JSON: ``jsonb`` on PostgreSQL (the README's map), the dialect's JSON elsewhere."""
    from sqlalchemy.dialects import postgresql

    return sat.JSON().with_variant(postgresql.JSONB(), "postgresql")


def type_text(kind: sat.TypeEngine[Any], dialect: Any = None) -> str:
    """``kind`` as the target ``dialect`` writes it (PostgreSQL's when None), lower case."""
    if dialect is None:
        from sqlalchemy.dialects import postgresql

        dialect = postgresql.dialect()
    try:
        return str(kind.compile(dialect=dialect)).lower()
    except Exception:  # noqa: BLE001 - a type the dialect cannot render is shown by its class name
        return type(kind).__name__.lower()


# -- reflected types -> portable types ------------------------------------------------------------


def portable(kind: sat.TypeEngine[Any]) -> sat.TypeEngine[Any]:
    """The generic type for a type reflected from a source database, as the README's type map says."""
    name = type(kind).__name__.upper()
    unsigned = bool(getattr(kind, "unsigned", False))
    if name == "TINYINT":
        return sat.Boolean() if getattr(kind, "display_width", None) == 1 else sat.SmallInteger()
    if name == "BIT":
        length = getattr(kind, "length", 1) or 1
        return sat.Boolean() if length == 1 else sat.Numeric(20, 0) if length == 64 else sat.BigInteger()
    if name == "YEAR":
        return sat.SmallInteger()
    if isinstance(kind, sat.Boolean):
        return sat.Boolean()
    if isinstance(kind, sat.Integer):
        if isinstance(kind, sat.SmallInteger) or name == "SMALLINT":
            return sat.Integer() if unsigned else sat.SmallInteger()
        if isinstance(kind, sat.BigInteger) or name == "BIGINT":
            return sat.Numeric(20, 0) if unsigned else sat.BigInteger()
        if name == "MEDIUMINT":
            return sat.Integer()
        return sat.BigInteger() if unsigned else sat.Integer()
    if isinstance(kind, sat.Numeric) and not isinstance(kind, sat.Float):
        precision, scale = kind.precision, kind.scale
        return sat.Numeric(precision, scale or 0) if precision is not None else sat.Numeric()
    if isinstance(kind, sat.Float):
        if name in ("REAL", "FLOAT4") or (name == "FLOAT" and (kind.precision or 53) <= 24):
            return sat.REAL()
        return sat.Double()
    if isinstance(kind, sat.DateTime):
        timezone = bool(getattr(kind, "timezone", False))
        precision = getattr(kind, "precision", None)
        fsp = getattr(kind, "fsp", None)
        chosen = precision if precision is not None else fsp
        return (
            _with_precision(sat.DateTime(timezone=timezone), chosen)
            if chosen is not None
            else (sat.DateTime(timezone=timezone))
        )
    if isinstance(kind, sat.Date):
        return sat.Date()
    if isinstance(kind, sat.Time):
        return sat.Time(timezone=bool(getattr(kind, "timezone", False)))
    if isinstance(kind, sat.Interval) or name == "INTERVAL":
        return sat.Interval()
    if isinstance(kind, sat.JSON) or name in ("JSON", "JSONB"):
        return json_type()
    if isinstance(kind, sat.Uuid) or name == "UUID":
        return sat.Uuid(as_uuid=False)
    if isinstance(kind, sat._Binary) or name in ("BLOB", "BYTEA", "BINARY", "VARBINARY"):
        return sat.LargeBinary()
    if isinstance(kind, sat.Enum) or name in ("ENUM", "SET"):
        return sat.Text()
    if isinstance(kind, sat.String) and name in ("VARCHAR", "CHARACTER VARYING", "NVARCHAR") and kind.length:
        return sat.String(kind.length)
    if isinstance(kind, sat.String) and name in ("CHAR", "CHARACTER", "BPCHAR", "NCHAR") and kind.length:
        return sat.CHAR(kind.length)
    return sat.Text()  # TEXT, CLOB, anything else: text keeps every value exactly


def for_mysql_source(kind: sat.TypeEngine[Any]) -> sat.TypeEngine[Any]:
    """MySQL's character types map to text (the README's map: VARCHAR(n) counts characters of any width
    and collates differently; text keeps every value), everything else as :func:`portable`."""
    name = type(kind).__name__.upper()
    if name in ("VARCHAR", "CHAR", "NVARCHAR", "NCHAR", "TINYTEXT", "MEDIUMTEXT", "LONGTEXT", "TEXT"):
        return sat.Text()
    if name == "FLOAT":  # MySQL's FLOAT is 4 bytes, DOUBLE 8
        return sat.REAL()
    return portable(kind)


def from_arrow(kind: Any) -> sat.TypeEngine[Any]:
    """The SQL type for a pyarrow type (Parquet files, Arrow batches), as the README's map says."""
    import pyarrow as pa

    t = pa.types
    if t.is_boolean(kind):
        return sat.Boolean()
    if t.is_int8(kind) or t.is_int16(kind) or t.is_uint8(kind):
        return sat.SmallInteger()
    if t.is_int32(kind) or t.is_uint16(kind):
        return sat.Integer()
    if t.is_int64(kind) or t.is_uint32(kind):
        return sat.BigInteger()
    if t.is_uint64(kind):
        return sat.Numeric(20, 0)
    if t.is_float16(kind) or t.is_float32(kind):
        return sat.REAL()
    if t.is_float64(kind):
        return sat.Double()
    if t.is_decimal(kind):
        return sat.Numeric(kind.precision, kind.scale)
    if t.is_timestamp(kind):
        return sat.DateTime(timezone=kind.tz is not None)
    if t.is_date(kind):
        return sat.Date()
    if t.is_time(kind):
        return sat.Time()
    if t.is_duration(kind):
        return sat.Interval()
    if t.is_binary(kind) or t.is_large_binary(kind) or t.is_fixed_size_binary(kind):
        return sat.LargeBinary()
    return sat.Text()  # strings, and nested values (written as JSON text)


def sqlite_declared(declared: str) -> sat.TypeEngine[Any]:
    """The type for a SQLite column's declared type: a name :func:`parse_type` knows (``numeric(38,10)``,
    ``timestamptz``, ``varchar(20)``), else SQLite's affinity rules (an ``INTEGER`` holds 64 bits)."""
    text = declared.strip().lower()
    if text in ("", "any", "blob"):
        return sat.LargeBinary() if text == "blob" else sat.Text()
    if text in ("int", "integer", "int8", "bigint"):
        return sat.BigInteger()
    if text in ("real", "double", "double precision", "float"):
        return sat.Double()
    if text in ("datetime", "timestamp"):
        return sat.DateTime()
    try:
        return parse_type(text)
    except ConfigError:
        pass
    if "int" in text:
        return sat.BigInteger()
    if any(word in text for word in ("char", "clob", "text")):
        return sat.Text()
    if any(word in text for word in ("real", "floa", "doub")):
        return sat.Double()
    return sat.Numeric()  # SQLite's NUMERIC affinity
