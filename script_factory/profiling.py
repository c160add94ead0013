"""Data profiles: per column of the rows a load wrote, null %, distinct count, min, max and text length.

A profile is computed the way reconciliation computes its target figures: one aggregate query over the
rows this load wrote (``LoadSession.aggregates`` with the load's ``Written`` rows), inside the load's
transaction, before it commits; no second pass over the source and none over the rest of the table. It
is written to ``etl_profiles`` on the same transaction, so a profile exists exactly for committed loads.

That query holds the exact figures, which cost one pass and no sort: the row count, the non-NULL count,
min, max and the longest text (``etl_max_length``, a SQLAlchemy function registered here that every SQL
target renders in its own dialect). The distinct count is the one figure that sorts (or hashes) every
column, so it is estimated where it would be costly (:func:`distinct_counts`):

* PostgreSQL, when the rows the load wrote are a table of their own -- the staging table of a strategy
  that staged them (merge, delete_insert, dedupe), or the target after a ``replace`` -- ``ANALYZE`` that
  table in the load's transaction and read ``n_distinct`` from ``pg_stats``: PostgreSQL's estimator
  (Haas & Stokes' Duj1) over a sample of 300 x ``default_statistics_target`` rows (30,000), which counts
  the rows the transaction itself inserted. Up to 30,000 rows the sample is every row and the count is
  exact; above, see the README (Profiles) for its measured error. A ``replace`` also leaves the planner
  fresh statistics of the reloaded table.
* Anywhere else (SQLite, MySQL, SQL Server, or a direct ``append`` into a table holding other rows):
  the exact ``count(DISTINCT ...)`` in the aggregate query, up to ``EXACT_ROWS`` rows written; above it
  the distinct count is not computed (NULL), so a profile never sorts a large load column by column.

The min and max of a column that ``columns:`` hashes, masks or encrypts are not stored: ``PROTECTED``
instead (the other figures say nothing of a value).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
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
    from sqlalchemy import Connection, TableClause
    from sqlalchemy.sql.compiler import SQLCompiler

    from connectors.target import LoadSession, Written

DISTINCT = "etl_distinct_count"
LENGTH = "etl_max_length"
SHOWN = 100  # characters of a min or max value kept (a profile is a glance, not a copy of the data)
EXACT_ROWS = 100_000  # rows written up to which a distinct count without a sample statistic is exact
PROTECTED = "(protected)"  # min_value/max_value of a hashed, masked or encrypted column


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


def aggregates(columns: Sequence[ProfiledColumn], exact_distinct: bool = True) -> list[Aggregate]:
    """The figures of one profile, for one aggregate query: the row count, then per column (the exact
    distinct counts only with ``exact_distinct``)."""
    wanted = [Aggregate("count")]
    for c in columns:
        wanted.append(Aggregate("count", c.name))  # the values that are not NULL
        if c.distinct and exact_distinct:
            wanted.append(Aggregate(DISTINCT, c.name))
        if c.ordered:
            wanted += [Aggregate("min", c.name), Aggregate("max", c.name)]
        if c.text:
            wanted.append(Aggregate(LENGTH, c.name))
    return wanted


def profile_rows(
    run_id: int | None,
    project: str,
    table: str,
    columns: Sequence[ProfiledColumn],
    figures: Mapping[str, Any],
    protected: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The ``etl_profiles`` rows of one load from its figures (labels as :func:`aggregates` made them);
    the min and max of the ``protected`` columns (any case) are :data:`PROTECTED`."""
    rows = int(figures.get("count") or 0)
    hidden = {name.lower() for name in protected}
    out = []
    for c in columns:
        present = figures.get(f"count({c.name})")
        nulls = rows - int(present) if present is not None else None
        low, high = figures.get(f"min({c.name})"), figures.get(f"max({c.name})")
        if c.name.lower() in hidden:
            low, high = (None if low is None else PROTECTED), (None if high is None else PROTECTED)
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
                "min_value": _shown(low),
                "max_value": _shown(high),
                "max_length": _int(figures.get(f"{LENGTH}({c.name})")),
            }
        )
    return out


def profile_load(
    conn: Connection,
    session: LoadSession,
    written: Written,
    table: TableName,
    run_id: int | None,
    project: str,
    *,
    rows_written: int,
    own_table: TableClause | None = None,
    protected: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Profile the rows this load wrote and record them on the load's transaction; returns the rows.

    ``own_table``: a table that holds exactly the rows written (the staging table, or the target of a
    ``replace``), where PostgreSQL estimates the distinct counts; ``protected``: columns whose min and
    max are not stored."""
    from script_factory import audit

    columns = columns_of(conn, table)
    sampled = own_table is not None and conn.dialect.name == "postgresql"
    exact = not sampled and rows_written <= EXACT_ROWS
    figures = session.aggregates(aggregates(columns, exact_distinct=exact), written)
    if sampled:
        assert own_table is not None
        figures |= distinct_counts(conn, own_table, columns, figures)
    rows = profile_rows(run_id, project, str(table), columns, figures, protected)
    audit.record_profile(conn, rows)
    return rows


def distinct_counts(
    conn: Connection, own: TableClause, columns: Sequence[ProfiledColumn], figures: Mapping[str, Any]
) -> dict[str, int]:
    """PostgreSQL's estimate of each column's distinct values in ``own`` (which holds the rows written),
    by :func:`aggregates`' labels: ``ANALYZE`` it (in the load's transaction: the sample includes the
    rows the transaction wrote) and read ``pg_stats.n_distinct``, the number of distinct non-NULL values,
    or when negative minus their ratio to the rows. Bounded by the column's non-NULL count."""
    from sqlalchemy import text

    name = conn.dialect.identifier_preparer.format_table(own)
    conn.exec_driver_sql(f"ANALYZE {name}")
    found = conn.execute(
        text(
            "SELECT s.attname, s.n_distinct FROM pg_stats s JOIN pg_class c ON c.relname = s.tablename "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname "
            "WHERE c.oid = to_regclass(:name)"
        ),
        {"name": name},
    )
    estimated = {str(column): float(value) for column, value in found if value is not None}
    rows = int(figures.get("count") or 0)
    out = {}
    for c in columns:
        present = int(figures.get(f"count({c.name})") or 0)
        if not c.distinct or c.name not in estimated:
            continue
        value = estimated[c.name]
        count = round(-value * rows) if value < 0 else round(value)
        out[f"{DISTINCT}({c.name})"] = min(present, max(count, 1 if present else 0))
    return out


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
