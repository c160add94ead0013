"""The quality-check step: run the project's checks, record each in ``etl_dq_results``, fail on errors."""

from __future__ import annotations

from collections.abc import Mapping

from data_quality_checks.checks import evaluate
from script_factory import audit
from script_factory.config import CheckSpec, Severity
from script_factory.context import RunContext
from script_factory.task import StepResult
from utilities.dates import zone
from utilities.errors import DataQualityError


def run_checks(ctx: RunContext, *, checks: tuple[CheckSpec, ...], custom_sql: Mapping[str, str]) -> StepResult:
    """Run every check (a failing one does not stop the others), then raise DataQualityError if any
    check of severity ``error`` failed. Warnings are logged and recorded only."""
    target = ctx.warehouse
    failed_errors: list[str] = []
    warnings = 0
    for check in checks:
        with target.translate_errors(f"check {check.name}"), target.read_connection() as conn:
            table = target.reflect(conn, check.table) if check.table is not None else None
            outcome = evaluate(
                conn,
                check.kind,
                check.options,
                table,
                name=check.name,
                custom_sql=custom_sql.get(check.name),
                now=ctx.now,
                source_zone=zone(ctx.project.timezone),
            )
        status = "pass" if outcome.passed else "fail"
        audit.record_dq_result(
            target.engine,
            {
                "run_id": ctx.run_id,
                "project": ctx.project.name,
                "check_name": check.name,
                "check_kind": check.kind,
                "table_name": str(check.table) if check.table else None,
                "severity": check.severity.value,
                "status": status,
                "failing_rows": outcome.failing_rows,
                "detail": outcome.detail,
            },
        )
        if outcome.passed:
            ctx.logger.info("check %s: pass (%s)", check.name, outcome.detail)
        elif check.severity is Severity.ERROR:
            ctx.logger.error("check %s: FAIL (%s)", check.name, outcome.detail)
            failed_errors.append(f"{check.name} ({outcome.detail})")
        else:
            ctx.logger.warning("check %s: fail, severity warn (%s)", check.name, outcome.detail)
            warnings += 1
    if failed_errors:
        raise DataQualityError(f"{len(failed_errors)} quality check(s) failed: " + "; ".join(failed_errors))
    return StepResult(message=f"{len(checks)} check(s): {len(checks) - warnings} passed, {warnings} warning(s)")


def preview_checks(ctx: RunContext, *, checks: tuple[CheckSpec, ...], custom_sql: Mapping[str, str]) -> str:
    return "\n".join(
        f"{c.name}: {c.kind} on {c.table or '(custom SQL)'} {dict(c.options)} severity={c.severity.value}"
        for c in checks
    )
