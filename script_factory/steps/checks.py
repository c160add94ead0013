"""Quality checks: evaluated on a connection, recorded in ``etl_dq_results``, and a gate on errors.

Two places run them. A check on a table loaded in this run is a *gate*: the load step evaluates it
inside the load's own transaction (script_factory/steps/load.py), before the commit, so an ``error``
failure rolls the load back. The other checks (tables not loaded in this run, custom SQL naming no
table) run after the loads, in the ``quality_checks`` task (:func:`run_checks`).

A check's verdict comes from its conditions (data_quality_checks/thresholds.py): ``error_if``, then
``warn_if``, compared with its failing rows (or their share of the table's rows); without them, its
severity with any failing row.

Either way the results are recorded where they were evaluated, unless one of them is a failure of
severity ``error``: then they all travel in the DataQualityError, and the runner records them once
the load's (or the run's) transaction has rolled back, so they are never lost with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from data_quality_checks.checks import CheckOutcome, evaluate
from data_quality_checks.thresholds import Threshold, percent_text, share, verdict
from script_factory.config import CheckSpec, Severity
from script_factory.context import RunContext
from script_factory.task import StepResult
from utilities.dates import zone
from utilities.errors import DataQualityError

if TYPE_CHECKING:
    from sqlalchemy import Connection


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: ``pass``, or ``fail`` at the severity whose condition held (``severity``;
    None: the check's own)."""

    check: CheckSpec
    passed: bool
    failing_rows: int
    detail: str
    severity: Severity | None = None

    @property
    def level(self) -> Severity:
        """The severity of the verdict: the one that fired, or the check's own for a pass."""
        return self.severity or self.check.severity

    @property
    def blocks(self) -> bool:
        """A failure of severity ``error``: the load (or the run) must not go on."""
        return not self.passed and self.level is Severity.ERROR


def evaluate_checks(
    ctx: RunContext, conn: Connection, checks: Sequence[CheckSpec], custom_sql: Mapping[str, str]
) -> list[CheckResult]:
    """Every check on ``conn`` (a failing one does not stop the others), each logged."""
    target = ctx.warehouse
    results = []
    for check in checks:
        error_if, warn_if = check.conditions()
        percent = any(c is not None and c.percent for c in (error_if, warn_if))
        with target.translate_errors(f"check {check.name}"):
            table = target.reflect(conn, check.table) if check.table is not None else None
            to = check.options.get("to") if check.kind == "relationships" else None
            outcome = evaluate(
                conn,
                check.kind,
                check.options,
                table,
                name=check.name,
                custom_sql=custom_sql.get(check.name),
                now=ctx.now,
                source_zone=zone(ctx.project.timezone),
                reference=target.reflect(conn, to) if to is not None else None,
                count_checked=percent,
            )
        fired = verdict(outcome.failing_rows, outcome.checked_rows, error_if, warn_if)
        result = CheckResult(
            check,
            passed=fired is None,
            failing_rows=outcome.failing_rows,
            detail=_detail(check, outcome, fired),
            severity=Severity(fired[0]) if fired else None,
        )
        if result.passed:
            ctx.logger.info("check %s: pass (%s)", check.name, result.detail)
        elif result.blocks:
            ctx.logger.error("check %s: FAIL (%s)", check.name, result.detail)
        else:
            ctx.logger.warning("check %s: fail, severity warn (%s)", check.name, result.detail)
        results.append(result)
    return results


def _detail(check: CheckSpec, outcome: CheckOutcome, fired: tuple[str, Threshold] | None) -> str:
    """The kind's line, with the share of the rows checked when a condition is a percentage, and the
    condition that fired (or, for a pass with failing rows, those that did not) when project.yml wrote any:
    ``3 row(s) with NULL in email (1.2% of 250 row(s)); error_if >1%``."""
    detail = outcome.detail
    if outcome.checked_rows is not None:
        detail += (
            f" ({percent_text(share(outcome.failing_rows, outcome.checked_rows))} of {outcome.checked_rows} row(s))"
        )
    if not check.has_conditions:
        return detail
    if fired is not None:
        return f"{detail}; {fired[0]}_if {fired[1]}"
    if outcome.failing_rows:
        written = [f"{k} {c}" for k, c in (("error_if", check.error_if), ("warn_if", check.warn_if)) if c is not None]
        return f"{detail}; {' and '.join(written)} not met"
    return detail


def settle(ctx: RunContext, conn: Connection, results: Sequence[CheckResult], extra: Sequence[Finding] = ()) -> str:
    """Record the results (and ``extra`` findings, e.g. a reconciliation's) on ``conn`` and return a
    one-line summary; or, when one of them blocks, raise DataQualityError carrying every row (the
    runner records them after the rollback that the error causes)."""
    from script_factory import audit  # SQLAlchemy's tables: imported when a run writes, not to assemble

    findings = [*extra, *(Finding(dq_row(ctx, r), _failure(r)) for r in results)]
    failures = [f.failure for f in findings if f.failure]
    if failures:
        raise DataQualityError(
            f"{len(failures)} quality check(s) failed: " + "; ".join(failures),
            results=tuple(f.row for f in findings),
        )
    for finding in findings:
        audit.record_dq_result(conn, finding.row)
    warnings = sum(1 for r in results if not r.passed)
    said = [f"{len(results)} check(s): {len(results) - warnings} passed, {warnings} warning(s)"] if results else []
    if extra:
        differ = sum(1 for f in extra if f.row.get("status") == "fail")
        said.append(f"{len(extra)} figure(s) reconciled" + (f", {differ} differ (warn)" if differ else ""))
    return "; ".join(said)


@dataclass(frozen=True)
class Finding:
    """An ``etl_dq_results`` row, and why it stops the load (None: it does not)."""

    row: dict[str, Any]
    failure: str | None = None


def _failure(result: CheckResult) -> str | None:
    return f"{result.check.name} ({result.detail})" if result.blocks else None


def dq_row(ctx: RunContext, result: CheckResult) -> dict[str, Any]:
    """The ``etl_dq_results`` row of ``result``."""
    check = result.check
    return {
        "run_id": ctx.run_id,
        "project": ctx.project.name,
        "check_name": check.name,
        "check_kind": check.kind,
        "table_name": str(check.table) if check.table else None,
        "severity": result.level.value,
        "status": "pass" if result.passed else "fail",
        "failing_rows": result.failing_rows,
        "detail": result.detail,
    }


def run_checks(ctx: RunContext, *, checks: tuple[CheckSpec, ...], custom_sql: Mapping[str, str]) -> StepResult:
    """The checks that are not gates of a load: evaluated after the loads, then recorded."""
    target = ctx.warehouse
    with target.translate_errors("quality checks"), target.read_connection() as conn:
        results = evaluate_checks(ctx, conn, checks, custom_sql)
    with target.translate_errors("record the quality checks"), target.transaction() as conn:
        message = settle(ctx, conn, results)
    return StepResult(message=message)


def preview_checks(ctx: RunContext, *, checks: tuple[CheckSpec, ...], custom_sql: Mapping[str, str]) -> str:
    return "\n".join(f"{c.name}: {c.kind} on {c.table or '(custom SQL)'} {dict(c.options)} {_when(c)}" for c in checks)


def _when(check: CheckSpec) -> str:
    """``severity=error``, or the conditions written: ``error_if=>1% warn_if=>0``."""
    if not check.has_conditions:
        return f"severity={check.severity.value}"
    return " ".join(f"{k}={c}" for k, c in (("error_if", check.error_if), ("warn_if", check.warn_if)) if c)
