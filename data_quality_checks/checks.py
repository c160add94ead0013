"""The check kinds: not_null, unique, accepted_values, row_count, freshness, relationships and custom_sql.

Each kind builds one SQLAlchemy query that counts the failing rows, so identifiers are quoted by
the dialect and values are bound. Whether that many failing rows fail the check is the caller's
verdict (thresholds.py: ``>0`` unless project.yml says otherwise). row_count and freshness have one
verdict, not rows: they count 1 failing "row" when out of bounds or stale, else 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from utilities.dates import as_datetime
from utilities.errors import FatalError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table
    from sqlalchemy.sql.selectable import NamedFromClause


@dataclass(frozen=True)
class CheckOutcome:
    """What a check counted: its failing rows, a line saying which, and (when asked) the rows it looked at."""

    failing_rows: int
    detail: str
    checked_rows: int | None = None

    @property
    def passed(self) -> bool:
        """No failing row (the verdict under error_if / warn_if is thresholds.verdict's)."""
        return self.failing_rows == 0


def evaluate(
    conn: Connection,
    kind: str,
    opts: Mapping[str, Any],
    table: Table | None,
    *,
    name: str,
    custom_sql: str | None,
    now: datetime,
    source_zone: tzinfo,
    reference: Table | None = None,
    count_checked: bool = False,
) -> CheckOutcome:
    """Run the check ``name`` of ``kind`` with its options ``opts`` against ``table`` (and, for
    relationships, the ``reference`` table ``opts['to']``, both reflected by the caller) and count what
    fails; ``count_checked``: also count ``table``'s rows (the base of a percentage). Plain values in, so
    the checks know nothing of the engine's config."""
    from dataclasses import replace

    from sqlalchemy import func, select

    outcome = _failing(
        conn, kind, opts, table, name=name, custom_sql=custom_sql, now=now, source_zone=source_zone, reference=reference
    )
    if count_checked and table is not None:
        return replace(outcome, checked_rows=conn.execute(select(func.count()).select_from(table)).scalar_one())
    return outcome


def _failing(
    conn: Connection,
    kind: str,
    opts: Mapping[str, Any],
    table: Table | None,
    *,
    name: str,
    custom_sql: str | None,
    now: datetime,
    source_zone: tzinfo,
    reference: Table | None,
) -> CheckOutcome:
    from sqlalchemy import func, or_, select, text

    if kind == "custom_sql":
        assert custom_sql is not None
        query = select(func.count()).select_from(text(custom_sql.strip().rstrip(";")).columns().subquery("failing"))
        failing = conn.execute(query).scalar_one()
        return CheckOutcome(failing, f"{failing} row(s) returned by {opts['file']}")
    assert table is not None
    if kind == "not_null":
        cols = [_column(table, c) for c in opts["columns"]]
        failing = conn.execute(
            select(func.count()).select_from(table).where(or_(*[c.is_(None) for c in cols]))
        ).scalar_one()
        return CheckOutcome(failing, f"{failing} row(s) with NULL in {', '.join(opts['columns'])}")
    if kind == "unique":
        cols = [_column(table, c) for c in opts["columns"]]
        groups = select(func.count().label("n")).select_from(table).group_by(*cols).having(func.count() > 1).subquery()
        failing = conn.execute(select(func.coalesce(func.sum(groups.c.n - 1), 0))).scalar_one()
        return CheckOutcome(int(failing), f"{failing} duplicate row(s) on {', '.join(opts['columns'])}")
    if kind == "accepted_values":
        col = _column(table, opts["column"])
        query = select(func.count()).select_from(table).where(col.is_not(None), col.not_in(list(opts["values"])))
        failing = conn.execute(query).scalar_one()
        return CheckOutcome(failing, f"{failing} row(s) with {opts['column']} outside {list(opts['values'])}")
    if kind == "row_count":
        count = conn.execute(select(func.count()).select_from(table)).scalar_one()
        low, high = opts["min"], opts["max"]
        bad = (low is not None and count < low) or (high is not None and count > high)
        wanted = (
            f"between {low} and {high}"
            if low is not None and high is not None
            else f"at least {low}"
            if low is not None
            else f"at most {high}"
        )
        return CheckOutcome(1 if bad else 0, f"{count} row(s); expected {wanted}")
    if kind == "freshness":
        newest = conn.execute(select(func.max(_column(table, opts["column"])))).scalar_one()
        return _freshness(newest, opts["max_age"], now, source_zone, opts["column"])
    if kind == "relationships":
        assert reference is not None
        return _relationships(conn, table, reference, opts["column"], opts["field"])
    raise FatalError(f"check {name}: unknown kind {kind!r}")


def _relationships(conn: Connection, table: Table, reference: Table, column: str, field: str) -> CheckOutcome:
    """The rows of ``table`` whose non-NULL ``column`` has no equal ``field`` in ``reference`` (NOT EXISTS),
    and up to three of those values as examples."""
    from sqlalchemy import exists, func, select

    child = _column(table, column)
    parent = reference.alias("referenced")  # an alias: the same table may reference itself
    found = _column(parent, field)
    orphan = (child.is_not(None), ~exists().where(found == child))
    failing = conn.execute(select(func.count()).select_from(table).where(*orphan)).scalar_one()
    where = f"{column} not found in {_name(reference)}.{field}"
    if not failing:
        return CheckOutcome(0, f"0 row(s) with {where}")
    examples = conn.execute(select(child).where(*orphan).group_by(child).order_by(child).limit(3)).scalars().all()
    shown = ", ".join(_example(v) for v in examples)
    return CheckOutcome(failing, f"{failing} row(s) with {where} (e.g. {shown})")


def _name(table: Table) -> str:
    return f"{table.schema}.{table.name}" if table.schema else table.name


def _example(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _column(table: NamedFromClause, name: str) -> Any:
    for column in table.columns:
        if column.name.lower() == name.lower():
            return column
    raise FatalError(f"table {table.name} has no column {name!r} (named in a check in project.yml)")


def _freshness(newest: Any, max_age: timedelta, now: datetime, source_zone: tzinfo, column: str) -> CheckOutcome:
    if newest is None:
        return CheckOutcome(1, f"no rows: {column} has no newest value")
    value = as_datetime(newest)
    if not isinstance(value, datetime):
        raise FatalError(f"freshness check: {column} holds {newest!r}, which is not a date or datetime")
    if value.tzinfo is None:
        value = value.replace(tzinfo=source_zone)
    age = now.astimezone(UTC) - value.astimezone(UTC)
    stale = age > max_age
    return CheckOutcome(
        1 if stale else 0, f"newest {column} is {value.isoformat(' ')}, {_hours(age)} old (max {max_age})"
    )


def _hours(age: timedelta) -> str:
    return f"{age.total_seconds() / 3600:.1f} h"
