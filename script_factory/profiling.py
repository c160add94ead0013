"""Data profiles: per column of the rows a load wrote, null %, distinct count, min, max and text length.

A profile is computed the way reconciliation computes its target figures: one aggregate query over the
rows this load wrote (``LoadSession.aggregates`` with the load's ``Written`` rows), inside the load's
transaction, before it commits; no second pass over the source and none over the rest of the table. It
is written to ``etl_profiles`` on the same transaction, so a profile exists exactly for committed loads.

The two figures the ``count``/``min``/``max`` aggregates cannot express are SQLAlchemy functions
registered here by name (``etl_distinct_count``, ``etl_max_length``), which every SQL target renders in
its own dialect. The distinct count is exact (``count(DISTINCT ...)``); the issue allows approximate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger
from sqlalchemy import types as sqltypes
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

from connectors.base import Aggregate, TableName

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.sql.compiler import SQLCompiler

    from connectors.target import LoadSession, Written

DISTINCT = "etl_distinct_count"
LENGTH = "etl_max_length"
SHOWN = 100  # characters of a min or max value kept (a profile is a glance, not a copy of the data)


class DistinctCount(GenericFunction[int]):
    """``count(DISTINCT x)``, found by SQLAlchemy as ``func.etl_distinct_count``."""

    name = DISTINCT
    type = BigInteger()
    inherit_cache = True


class MaxLength(GenericFunction[int]):
    """The longest text in characters, ``func.etl_max_length``: ``max(char_length(x))`` (``length`` on SQLite,
    ``len`` on SQL Server)."""

    name = LENGTH
    type = BigInteger()
    inherit_cache = True


@compiles(DistinctCount)
def _distinct(element: DistinctCount, compiler: SQLCompiler, **kw: Any) -> str:
    return f"count(DISTINCT {compiler.process(element.clauses, **kw)})"


@compiles(MaxLength)
def _length(element: MaxLength, compiler: SQLCompiler, **kw: Any) -> str:
    return f"max(char_length({compiler.process(element.clauses, **kw)}))"


@compiles(MaxLength, "sqlite")
def _length_sqlite(element: MaxLength, compiler: SQLCompiler, **kw: Any) -> str:
    return f"max(length({compiler.process(element.clauses, **kw)}))"


@compiles(MaxLength, "mssql")
def _length_mssql(element: MaxLength, compiler: SQLCompiler, **kw: Any) -> str:
    return f"max(len({compiler.process(element.clauses, **kw)}))"


@dataclass(frozen=True)
class ProfiledColumn:
    """A column of the target and the figures its type allows."""

    name: str
    data_type: str
    distinct: bool  # equality exists (not JSON, not arrays)
    ordered: bool  # min and max mean something (numbers, text, dates)
    text: bool  # the longest text is measured


def columns_of(conn: Connection, table: TableName) -> list[ProfiledColumn]:
    """The target's columns as the load's transaction sees them (it may have just created the table)."""
    from sqlalchemy import inspect

    found = inspect(conn).get_columns(table.name, schema=table.schema)
    return [_profiled(str(c["name"]), c["type"]) for c in found]


def _profiled(name: str, kind: sqltypes.TypeEngine[Any]) -> ProfiledColumn:
    text = isinstance(kind, sqltypes.String | sqltypes.Enum)
    ordered = text or isinstance(kind, sqltypes.Numeric | sqltypes.Integer | sqltypes.Date | sqltypes.DateTime)
    ordered = ordered or isinstance(kind, sqltypes.Time | sqltypes.Interval)
    unequal = isinstance(kind, sqltypes.JSON | sqltypes.ARRAY | sqltypes.NullType)
    try:
        shown = str(kind)
    except Exception:  # noqa: BLE001 (a dialect type without a generic spelling)
        shown = type(kind).__name__
    return ProfiledColumn(name, shown[:100], not unequal, ordered and not isinstance(kind, sqltypes.Boolean), text)


def aggregates(columns: Sequence[ProfiledColumn]) -> list[Aggregate]:
    """The figures of one profile, for one aggregate query: the row count, then per column."""
    wanted = [Aggregate("count")]
    for c in columns:
        wanted.append(Aggregate("count", c.name))  # the values that are not NULL
        if c.distinct:
            wanted.append(Aggregate(DISTINCT, c.name))
        if c.ordered:
            wanted += [Aggregate("min", c.name), Aggregate("max", c.name)]
        if c.text:
            wanted.append(Aggregate(LENGTH, c.name))
    return wanted


def profile_rows(
    run_id: int | None, project: str, table: str, columns: Sequence[ProfiledColumn], figures: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The ``etl_profiles`` rows of one load from its figures (labels as :func:`aggregates` made them)."""
    rows = int(figures.get("count") or 0)
    out = []
    for c in columns:
        present = figures.get(f"count({c.name})")
        nulls = rows - int(present) if present is not None else None
        out.append(
            {
                "run_id": run_id,
                "project": project,
                "table_name": table,
                "column_name": c.name,
                "data_type": c.data_type,
                "rows": rows,
                "null_count": nulls,
                "null_pct": round(100.0 * nulls / rows, 4) if rows and nulls is not None else None,
                "distinct_count": _int(figures.get(f"{DISTINCT}({c.name})")),
                "min_value": _shown(figures.get(f"min({c.name})")),
                "max_value": _shown(figures.get(f"max({c.name})")),
                "max_length": _int(figures.get(f"{LENGTH}({c.name})")),
            }
        )
    return out


def profile_load(
    conn: Connection, session: LoadSession, written: Written, table: TableName, run_id: int | None, project: str
) -> list[dict[str, Any]]:
    """Profile the rows this load wrote and record them on the load's transaction; returns the rows."""
    from script_factory import audit

    columns = columns_of(conn, table)
    rows = profile_rows(run_id, project, str(table), columns, session.aggregates(aggregates(columns), written))
    audit.record_profile(conn, rows)
    return rows


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime | date | time):
        text = value.isoformat()
    elif isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, bytes | memoryview):
        text = bytes(value)[:SHOWN].hex()
    else:
        text = str(value)
    return text[:SHOWN]
