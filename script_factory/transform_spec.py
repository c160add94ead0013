"""The transforms of one table as frozen data: what ``columns:``, ``dedupe:``, ``lookups:`` and ``transform:``
in project.yml ask for (validated by config_models.py, applied by script_factory/transforms.py).

Names: ``columns:``, ``select:`` and ``drop:`` name the SOURCE's columns; everything after the
``columns:`` step (``lookups:``'s ``column``, ``dedupe.keys``, and the table's ``keys:`` and
``cursor:``) names TARGET columns, i.e. after ``rename``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.base import TableName

PII_KEY_VARIABLE = "ETL_PII_KEY"


@dataclass(frozen=True)
class ColumnRule:
    """What happens to one source column: trim, null_if, default, cast (in that order), then the
    lookups of the table, then one of hash / mask / encrypt; ``rename`` gives its target name."""

    source: str
    rename: str | None = None
    cast: str | None = None  # a type name parse_type() knows, e.g. numeric(12,2)
    trim: bool = False
    null_if: tuple[Any, ...] = ()
    default: Any = None
    hash: bool = False
    mask: int | None = None  # keep the last N characters
    encrypt: bool = False

    @property
    def target(self) -> str:
        return self.rename or self.source

    @property
    def protects(self) -> str | None:
        """The PII operation, if any: ``hash``, ``mask`` or ``encrypt``."""
        return "hash" if self.hash else "mask" if self.mask is not None else "encrypt" if self.encrypt else None


@dataclass(frozen=True)
class LookupRule:
    """Add column ``name``: the ``value`` of the reference row whose ``key`` equals ``column`` (NULL when none)."""

    column: str
    key: str
    value: str
    name: str
    file: str | None = None  # a CSV file of the project (header row), or:
    connection: str | None = None
    table: TableName | None = None
    type: str | None = None  # the added column's type (default text)

    @property
    def origin(self) -> str:
        return self.file if self.file else f"{self.connection}.{self.table}"


@dataclass(frozen=True)
class DedupeRule:
    """Keep, per ``keys``, the staged row with the latest ``cursor`` (done in the target's staging table)."""

    keys: tuple[str, ...]
    cursor: str


@dataclass(frozen=True)
class TransformSpec:
    """Every transform of a table (``TableSpec.transforms``; None when the table has none)."""

    select: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    columns: tuple[ColumnRule, ...] = ()
    lookups: tuple[LookupRule, ...] = ()
    dedupe: DedupeRule | None = None
    function: str | None = None  # a function of script_worker.py: Batch -> Batch

    @property
    def in_flight(self) -> bool:
        """Whether rows are changed on their way (then the read cannot be COPY pass-through). A dedupe
        alone runs in the staging table, so the pass-through stays."""
        return bool(self.select or self.drop or self.columns or self.lookups or self.function)

    @property
    def needs_key(self) -> bool:
        """Whether ETL_PII_KEY is needed (hash or encrypt)."""
        return any(c.hash or c.encrypt for c in self.columns)

    def source_name(self, target: str) -> str:
        """The source column that becomes target column ``target`` (the inverse of ``rename``)."""
        for rule in self.columns:
            if rule.rename and rule.rename.lower() == target.lower():
                return rule.source
        return target
