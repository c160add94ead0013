"""Reconciliation: the source's figures of a window against the same figures of what the load wrote.

The source computes its figures (``count``, ``sum`` of columns, ``min``/``max`` of columns) with one
bound query over the table's window before the rows are read; the target computes the same figures
over the rows the load wrote, inside the load's transaction, before it commits. Each figure is a row
of ``etl_dq_results`` (kind ``reconcile``: source, target, difference); a mismatch beyond the
tolerance fails the load at the configured severity (``error``: it rolls back, exit 4).

A source that cannot compute figures (files, objects, APIs) reconciles ``count`` only: its figure is
the number of rows read, which still catches rows lost between the source and the table (a trigger
that drops them, a constraint that skips them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import Aggregate
from script_factory.config import ReconcileSpec, Severity
from utilities.dates import as_datetime


@dataclass(frozen=True)
class Figure:
    """One reconciled figure: what the source said, what the target holds, and whether they agree."""

    label: str
    source: Any
    target: Any
    difference: str
    agrees: bool


def aggregates(spec: ReconcileSpec) -> list[Aggregate]:
    figures = [Aggregate("count")] if spec.count else []
    figures += [Aggregate("sum", c) for c in spec.sums]
    figures += [Aggregate(f, c) for c in spec.min_max for f in ("min", "max")]
    return figures


def compare(spec: ReconcileSpec, source: Mapping[str, Any], target: Mapping[str, Any]) -> list[Figure]:
    """Each figure of ``target`` against ``source``; numbers agree within ``spec.tolerance``, other values
    (dates, text) when equal once read the same way (a SQLite text date equals the datetime it says)."""
    return [_figure(label, source.get(label), value, spec.tolerance) for label, value in target.items()]


def _figure(label: str, source: Any, target: Any, tolerance: float) -> Figure:
    low, high = _number(source), _number(target)
    if low is not None and high is not None:
        difference = high - low
        allowed = Decimal(str(tolerance))
        if isinstance(source, float) or isinstance(target, float):  # a float sum (SQLite) is never exact
            allowed = max(allowed, abs(high) * Decimal("1e-9"))
        return Figure(label, source, target, f"{difference:+}", abs(difference) <= allowed)
    if source is None and target is None:
        return Figure(label, source, target, "0", True)
    agrees = _comparable(source) == _comparable(target)
    return Figure(label, source, target, "equal" if agrees else "differs", agrees)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _comparable(value: Any) -> Any:
    if isinstance(value, datetime | date | str):
        try:
            moment = as_datetime(value)
        except (TypeError, ValueError):
            return value
        if isinstance(moment, datetime) and moment.tzinfo is not None:
            return moment.astimezone(UTC).replace(tzinfo=None)
        return moment
    return value


def dq_rows(base: Mapping[str, Any], table: str, spec: ReconcileSpec, figures: list[Figure]) -> list[dict[str, Any]]:
    """The ``etl_dq_results`` rows of ``figures`` (``base`` carries run_id and project)."""
    return [
        {
            **base,
            "check_name": f"reconcile_{table.replace('.', '_')}_{f.label.replace('(', '_').rstrip(')')}"[:200],
            "check_kind": "reconcile",
            "table_name": table,
            "severity": spec.severity.value,
            "status": "pass" if f.agrees else "fail",
            "failing_rows": None,
            "detail": f"{f.label}: source {f.source}, target {f.target}, difference {f.difference}",
            "source_value": None if f.source is None else str(f.source),
            "target_value": None if f.target is None else str(f.target),
            "difference": f.difference,
        }
        for f in figures
    ]


def blocks(spec: ReconcileSpec, figures: list[Figure]) -> list[Figure]:
    """The figures that fail the load: disagreements, when the severity is ``error``."""
    return [f for f in figures if not f.agrees] if spec.severity is Severity.ERROR else []
