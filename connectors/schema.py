"""Target tables from the source: what to create, add or widen so a target fits the source's columns.

:func:`plan_changes` compares the columns a source describes (``connectors/columns.py``, after the
table's transforms) with the target table as it is, under the table's policy, and returns a
:class:`SchemaPlan`: the table to create, the columns to add or widen, the columns the source no
longer returns, or an error. It decides; it runs nothing. A SQL target renders the plan in its
dialect (:func:`render`) and runs it inside the load's transaction, and the load step records each
change in the ``etl_schema_changes`` ledger with the run id.

The rules (``on_schema_change``):

* ``add_columns`` (default): a new source column is added; a column the source no longer returns
  stays, filled with NULL, with a warning; a widening (varchar(n) -> longer or text, smallint ->
  integer -> bigint, numeric(p,s) -> larger p, real -> double) is applied in place; any other change
  of type is an error naming the column, both types and what to do.
* ``fail``: any difference is an error before anything is written.
* ``ignore``: the source's extra columns are not loaded, missing ones are loaded as NULL.

Types are compared only for tables this product created (the ledger says so): a hand-written table's
types are the operator's choice (an ``amount REAL`` loaded into ``numeric(12,2)`` is deliberate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from connectors.base import TableName
from connectors.columns import SourceColumn, type_text
from utilities.errors import FatalError
from utilities.lazy import lazy_module

if TYPE_CHECKING:
    import sqlalchemy.types as sat
else:
    sat = lazy_module("sqlalchemy.types")  # imported when a type is first built or compared


class OnSchemaChange(StrEnum):
    ADD_COLUMNS = "add_columns"
    FAIL = "fail"
    IGNORE = "ignore"


@dataclass(frozen=True)
class SchemaPolicy:
    """What a load may do to its target's shape."""

    create: bool = True
    on_change: OnSchemaChange = OnSchemaChange.ADD_COLUMNS
    managed: bool = False  # the table was created by a load (types are compared)


@dataclass(frozen=True)
class Widening:
    column: str
    old: sat.TypeEngine[Any]
    new: sat.TypeEngine[Any]


@dataclass(frozen=True)
class SchemaStep:
    """One statement that applies a plan: what it changes (the ledger's ``change``), on which column."""

    change: str  # create | create_index | add_column | widen
    column: str | None
    ddl: str


@dataclass(frozen=True)
class SchemaPlan:
    """What a load does to its target before writing rows (empty: nothing)."""

    table: TableName
    create: tuple[SourceColumn, ...] = ()  # the table to create, with these columns
    keys: tuple[str, ...] = ()  # its primary key (create)
    cursor: str | None = None  # indexed (create)
    add: tuple[SourceColumn, ...] = ()
    widen: tuple[Widening, ...] = ()
    missing: tuple[str, ...] = ()  # target columns the source no longer returns (loaded as NULL)
    ignored: tuple[str, ...] = ()  # source columns not loaded (ignore)
    warnings: tuple[str, ...] = field(default=())

    @property
    def changes_table(self) -> bool:
        return bool(self.create or self.add or self.widen)

    def summary(self) -> str:
        """One line for ``--check`` and the log."""
        if self.create:
            return f"would be created ({len(self.create)} columns)"
        parts = [f"add {c.name}" for c in self.add]
        parts += [f"widen {w.column} {type_text(w.old)} -> {type_text(w.new)}" for w in self.widen]
        parts += [f"{name} no longer in the source (NULL)" for name in self.missing]
        parts += [f"{name} not loaded (ignore)" for name in self.ignored]
        return (
            ("would be evolved: " + ", ".join(parts))
            if self.add or self.widen
            else ("matches" + (f" ({', '.join(parts)})" if parts else ""))
        )


def plan_changes(
    table: TableName,
    existing: Sequence[SourceColumn] | None,
    described: Sequence[SourceColumn],
    keys: Sequence[str],
    cursor: str | None,
    policy: SchemaPolicy,
    dialect: Any,
) -> SchemaPlan:
    """The changes that make ``table`` (``existing`` columns, None when it does not exist) take the
    ``described`` columns under ``policy``; FatalError when the policy forbids what is needed.
    ``dialect`` is the target's (types are compared as it writes them)."""
    if existing is None:
        if not policy.create:
            raise FatalError(
                f"target table {table} does not exist and create is false for it; create it with a DDL file "
                f"(ddl: in project.yml) or remove create: false to create it from the source"
            )
        names = {c.name.lower() for c in described}
        for required in (*keys, *([cursor] if cursor else [])):
            if required.lower() not in names:
                raise FatalError(
                    f"cannot create {table}: the source does not return column {required!r} named in project.yml"
                )
        return SchemaPlan(table, create=tuple(described), keys=tuple(keys), cursor=cursor)
    by_name = {c.name.lower(): c for c in existing}
    source_names = {c.name.lower() for c in described}
    new = tuple(c for c in described if c.name.lower() not in by_name)
    missing = tuple(c.name for c in existing if c.name.lower() not in source_names)
    widen: list[Widening] = []
    if policy.managed:
        for column in described:
            old = by_name.get(column.name.lower())
            if old is None:
                continue
            verdict = compare(old.type, column.type, dialect)
            if verdict == "widen":
                widen.append(Widening(old.name, old.type, column.type))
            elif verdict == "incompatible":
                _incompatible(table, old, column, dialect, policy)
    if policy.on_change is OnSchemaChange.FAIL and (new or missing or widen):
        differences = [f"new column {c.name} ({type_text(c.type, dialect)})" for c in new]
        differences += [f"column {name} is no longer in the source" for name in missing]
        differences += [
            f"column {w.column} is {type_text(w.new, dialect)} in the source, {type_text(w.old, dialect)} in the target"
            for w in widen
        ]
        raise FatalError(
            f"target table {table} differs from the source and on_schema_change is fail: {'; '.join(differences)}; "
            f"change the table (a DDL file) or set on_schema_change: add_columns"
        )
    if policy.on_change is OnSchemaChange.IGNORE:
        return SchemaPlan(table, missing=missing, ignored=tuple(c.name for c in new))
    return SchemaPlan(table, add=new, widen=tuple(widen), missing=missing)


def _incompatible(table: TableName, old: SourceColumn, new: SourceColumn, dialect: Any, policy: SchemaPolicy) -> None:
    if policy.on_change is OnSchemaChange.IGNORE:
        return
    raise FatalError(
        f"target table {table}: column {old.name} is {type_text(old.type, dialect)} in the target but "
        f"{type_text(new.type, dialect)} in the source, which is not a widening; alter the column by hand "
        f"(a DDL file), cast it in the table's columns:, or set on_schema_change: ignore"
    )


# -- type comparison --------------------------------------------------------------------------------


def _int_rank(kind: sat.TypeEngine[Any]) -> int | None:
    if isinstance(kind, sat.Boolean) or not isinstance(kind, sat.Integer):
        return None
    if isinstance(kind, sat.SmallInteger):
        return 1
    if isinstance(kind, sat.BigInteger):
        return 3
    return 2


def _length(kind: sat.TypeEngine[Any]) -> float | None:
    """A character type's length (infinite for text); None for other types."""
    if isinstance(kind, sat.Enum) or not isinstance(kind, sat.String):
        return None
    return float(kind.length) if kind.length else float("inf")


def compare(old: sat.TypeEngine[Any], new: sat.TypeEngine[Any], dialect: Any) -> str:
    """``same``, ``holds`` (the old type stores every value of the new one), ``widen`` (the new type is
    a wider one of the same kind: alter the column) or ``incompatible``."""
    if type_text(old, dialect) == type_text(new, dialect):
        return "same"
    old_rank, new_rank = _int_rank(old), _int_rank(new)
    if old_rank is not None and new_rank is not None:
        return "holds" if old_rank >= new_rank else "widen"
    old_len, new_len = _length(old), _length(new)
    if old_len is not None and new_len is not None:
        return "holds" if old_len >= new_len else "widen"
    if _is_numeric(old) and _is_numeric(new):
        return _compare_numeric(old, new)
    if _is_numeric(old) and new_rank is not None:
        digits = {1: 5, 2: 10, 3: 19}[new_rank]
        precision, scale = getattr(old, "precision", None), getattr(old, "scale", None) or 0
        return "holds" if precision is None or precision - scale >= digits else "incompatible"
    if isinstance(old, sat.Float) and isinstance(new, sat.Float):
        return "holds" if _float_bits(old) >= _float_bits(new) else "widen"
    if isinstance(old, sat.DateTime) and isinstance(new, sat.DateTime):
        same_zone = bool(getattr(old, "timezone", False)) == bool(getattr(new, "timezone", False))
        return "same" if same_zone else "incompatible"  # a precision change keeps the column
    if _length(old) == float("inf"):
        return "incompatible"  # text -> anything else: the operator decides (cast or alter)
    return "incompatible"


def _is_numeric(kind: sat.TypeEngine[Any]) -> bool:
    return isinstance(kind, sat.Numeric) and not isinstance(kind, sat.Float)


def _compare_numeric(old: sat.TypeEngine[Any], new: sat.TypeEngine[Any]) -> str:
    op, os_ = getattr(old, "precision", None), getattr(old, "scale", None) or 0
    np_, ns = getattr(new, "precision", None), getattr(new, "scale", None) or 0
    if op is None:
        return "holds"
    if np_ is None:
        return "widen"  # numeric(p,s) -> numeric: unbounded
    if op >= np_ and os_ >= ns and op - os_ >= np_ - ns:
        return "holds"
    if ns == os_ and np_ > op:
        return "widen"
    return "incompatible"


def _float_bits(kind: sat.TypeEngine[Any]) -> int:
    return 24 if isinstance(kind, sat.REAL) or type(kind).__name__ == "REAL" else 53
