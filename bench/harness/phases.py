"""Running the approaches: alternating full loads per source, then our incremental runs, each one checked."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace

from harness import databases
from harness.approaches import EVERY_RUN, Approach, Prepare, Verify, build, ours_command
from harness.config import PG_SOURCE_DB, PG_TARGET_DB, REPO_DIR, BenchConfig, child_environment
from harness.databases import Fingerprint
from harness.footprint import measure_imports
from harness.measure import Measurement, log_tail, run_measured
from harness.results import ApproachResult, IncrementalResult, IncrementalRound, PhaseResult, RunRecord

logger = logging.getLogger(__name__)


class BenchFailure(RuntimeError):
    """Our runner failed or loaded something other than the source: the benchmark stops, non-zero."""


def run_full_phase(config: BenchConfig, source: str, reference: Fingerprint) -> PhaseResult:
    """Every selected approach ``config.runs`` times, alternating (A B C A B C ...), each run checked."""
    approaches = _build(config, source)
    phase = PhaseResult(source=source, rows=reference.rows)
    results: dict[str, ApproachResult] = {}
    for approach in approaches:
        result = ApproachResult(
            name=approach.name, key=approach.key, label=approach.label, source=source, ours=approach.ours,
            verify=approach.verify.value, skip_reason=approach.skip_reason,
        )  # fmt: skip
        results[approach.name] = result
        phase.approaches.append(result)
        if approach.skip_reason:
            logger.warning("%s: skipped: %s", approach.name, approach.skip_reason)
        elif approach.prepare is Prepare.TRUNCATE and not approach.ours:
            databases.create_target(config.postgres, config.data, approach.target)
    for run_no in range(1, config.runs + 1):
        for approach in approaches:
            result = results[approach.name]
            if result.skip_reason or result.failure:
                continue
            if approach.key not in (*EVERY_RUN, "ours") and run_no > config.competitor_runs:
                continue
            _one_full_run(config, approach, result, run_no, reference)
    for approach in approaches:
        result = results[approach.name]
        if approach.ours and result.good_runs:
            footprint = measure_imports(config, approach.argv, dict(approach.env), f"{source}_{approach.key}")
            if footprint is not None:
                result.imports_rss_mb, result.imported_modules = footprint.imports_mb, footprint.modules
                logger.info("%s: its imports alone peak at %.0f MB (%d top-level imports replayed)",
                            approach.name, footprint.imports_mb, footprint.modules)  # fmt: skip
    return phase


def _one_full_run(
    config: BenchConfig, approach: Approach, result: ApproachResult, run_no: int, reference: Fingerprint
) -> None:
    log = config.logs_dir / f"{approach.source}_{approach.key}_run{run_no}.log"
    cwd = REPO_DIR if approach.ours else config.work_dir
    try:
        _prepare(config, approach)
        measured = run_measured(approach.argv, child_environment(dict(approach.env)), cwd, log, config.timeout)
        problem = _problem(config, approach, measured, reference)
    except Exception as exc:  # e.g. a tool exits 0 but its target is not there
        if approach.ours:
            raise
        problem = f"{type(exc).__name__}: {exc} (log: {log})".strip()
        measured = Measurement(0.0, 0.0, -1, False, log)
    result.runs.append(RunRecord(measured.seconds, measured.peak_rss_mb, problem is None, problem or ""))
    if problem is None:
        logger.info("%s run %d/%d: %.2f s, peak RSS %.0f MB, target verified (%s)", approach.name, run_no,
                    config.runs, measured.seconds, measured.peak_rss_mb, approach.verify.value)  # fmt: skip
        return
    if approach.ours:
        raise BenchFailure(f"{approach.name} run {run_no}: {problem}")
    result.failure = problem
    logger.error("%s run %d: %s; it is left out of the remaining runs", approach.name, run_no, problem)


def _build(config: BenchConfig, source: str) -> list[Approach]:
    """The approaches of ``source``; one that cannot even be set up is noted as skipped, with the reason."""
    try:
        return build(config, source)
    except Exception as exc:  # noqa: BLE001 - a tool's set-up must not stop the other approaches
        logger.warning("setting up the approaches failed (%s); retrying one by one", exc)
    approaches = []
    for key in config.approaches:
        try:
            approaches += build(replace(config, approaches=(key,)), source)
        except Exception as exc:  # noqa: BLE001
            approaches.append(
                Approach(key, key, source, "", Verify.COUNT, Prepare.TRUNCATE, skip_reason=f"set-up failed: {exc}")
            )
    return approaches


def _prepare(config: BenchConfig, approach: Approach) -> None:
    for folder in approach.scratch:
        shutil.rmtree(folder, ignore_errors=True)
    if approach.prepare is Prepare.TRUNCATE:
        databases.truncate_target(config.postgres, approach.target)
    elif approach.prepare is Prepare.RECREATE_DATABASE:
        databases.recreate_database(config.postgres, approach.database)
    else:
        databases.drop_schema(config.postgres, approach.schema)
        shutil.rmtree(config.work_dir / "dlt" / approach.schema, ignore_errors=True)


def _problem(config: BenchConfig, approach: Approach, measured: Measurement, reference: Fingerprint) -> str | None:
    """Why the run does not count (failed, timed out, wrong target), or None when it is good."""
    if measured.timed_out:
        return f"timed out after {config.timeout:.0f} s (log: {measured.log})"
    if measured.exit_code != 0:
        return f"exit code {measured.exit_code} (log: {measured.log}):\n{log_tail(measured.log)}"
    if approach.verify is Verify.CHECKSUM:
        got = databases.fingerprint(config.postgres, approach.database, config.data, approach.target)
        if got != reference:
            return (
                f"TARGET MISMATCH in {approach.target}: {got.rows} rows, checksum {got.checksum}; "
                f"the source has {reference.rows} rows, checksum {reference.checksum}"
            )
        return None
    rows = databases.row_count(config.postgres, approach.target, approach.database)
    if rows != reference.rows:
        return f"TARGET MISMATCH in {approach.target}: {rows} rows; the source has {reference.rows}"
    return None


def run_incremental(config: BenchConfig, ours_loaded: bool) -> IncrementalResult:
    """Change ``incremental_pct``% of the PostgreSQL source (new and updated rows), then time ``--load-type I``.

    Needs our PostgreSQL target fully loaded with a watermark; when the full phase did not run our
    runner, one untimed full load comes first. Every incremental run is checked against the source.
    """
    data = config.data
    target = data.target("pgsrc_ours")
    if not ours_loaded:
        _untimed_full_load(config)
    before = databases.fingerprint(config.postgres, PG_SOURCE_DB, data, data.source_table)
    result = IncrementalResult(rows_before=before.rows, percent=config.incremental_pct)
    argv, env = ours_command(config, "pg", "I")
    for round_no in range(1, config.incremental_runs + 1):
        inserted, updated = databases.change_source(config.postgres, data, round_no, config.incremental_pct)
        reference = databases.fingerprint(config.postgres, PG_SOURCE_DB, data, data.source_table)
        log = config.logs_dir / f"pg_ours_incremental{round_no}.log"
        measured = run_measured(argv, child_environment(env), REPO_DIR, log, config.timeout)
        if not measured.ok:
            raise BenchFailure(f"incremental run {round_no}: exit code {measured.exit_code}:\n{log_tail(log)}")
        got = databases.fingerprint(config.postgres, PG_TARGET_DB, data, target)
        if got != reference:
            raise BenchFailure(
                f"incremental run {round_no}: TARGET MISMATCH in {target}: {got.rows} rows, checksum {got.checksum}; "
                f"the source has {reference.rows} rows, checksum {reference.checksum} (log: {log})"
            )
        result.rounds.append(IncrementalRound(inserted, updated, measured.seconds, measured.peak_rss_mb))
        logger.info("pg:ours incremental %d/%d: %d new + %d changed rows in %.2f s, peak RSS %.0f MB, verified",
                    round_no, config.incremental_runs, inserted, updated, measured.seconds,
                    measured.peak_rss_mb)  # fmt: skip
    return result


def _untimed_full_load(config: BenchConfig) -> None:
    argv, env = ours_command(config, "pg", "F")
    log = config.logs_dir / "pg_ours_full_before_incremental.log"
    measured = run_measured(argv, child_environment(env), REPO_DIR, log, config.timeout)
    if not measured.ok:
        raise BenchFailure(f"the full load before the incremental runs failed:\n{log_tail(log)}")
