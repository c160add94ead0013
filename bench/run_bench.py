"""The benchmark command: a generated table (TPC-H lineitem or sales), loaded by each approach, timed, checked.

Run it through ``bench/run.sh`` (which creates bench/.venv first); see bench/README.md.

    bench/run.sh --sf 1 --runs 5
    bench/run.sh --dataset sales --rows 1000000 --runs 5 --approaches pipes,ours,specialists
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from harness import databases, machine, report
from harness.approaches import GROUPS, KEYS, SOURCES
from harness.config import BENCH_DIR, PG_SOURCE_DB, BenchConfig, Server
from harness.datagen import dataset_csv
from harness.datasets import NAMES as DATASETS
from harness.measure import check_time_tool
from harness.phases import run_full_phase, run_incremental
from harness.results import BenchResult

logger = logging.getLogger("bench")
T = TypeVar("T")
Parser = Callable[[str], tuple[str, ...]]


def _names(allowed: tuple[str, ...], groups: Mapping[str, tuple[str, ...]] = MappingProxyType({})) -> Parser:

    def parse(text: str) -> tuple[str, ...]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        if not names or any(n not in allowed and n not in groups for n in names):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of: {', '.join([*allowed, *groups])}")
        wanted = {k for n in names for k in groups.get(n, (n,))}
        return tuple(k for k in allowed if k in wanted)

    return parse


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(text: str) -> T:
        value = kind(text)
        if not value > 0:  # type: ignore[operator]
            raise argparse.ArgumentTypeError(f"{text!r}: expected a number > 0")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__.splitlines()[0])
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default="lineitem",
        help="lineitem (TPC-H, sized by --sf) or sales (11 mixed columns, sized by --rows); default lineitem",
    )
    p.add_argument("--sf", type=_positive(float), default=0.01, help="TPC-H scale factor (default 0.01; SF1: 6M rows)")
    p.add_argument("--rows", type=_positive(int), default=60_000, help="rows of the sales dataset (default 60000)")
    p.add_argument("--runs", type=_positive(int), default=3, help="timed runs per approach (default 3)")
    p.add_argument(
        "--competitor-runs",
        type=_positive(int),
        default=None,
        help="runs of pandas, dlt and Sling (default: --runs); the pipe and ours always get --runs",
    )
    p.add_argument("--sources", type=_names(SOURCES), default=SOURCES, help="pg,mysql (default both)")
    groups = ", ".join(f"{name}={'+'.join(keys)}" for name, keys in GROUPS.items())
    p.add_argument(
        "--approaches",
        "--only",
        type=_names(KEYS, GROUPS),
        default=KEYS,
        help=f"comma-separated subset of {','.join(KEYS)}, or of the groups {groups} (default all)",
    )
    p.add_argument("--incremental-runs", type=int, default=None, help="incremental runs of ours (default: --runs)")
    p.add_argument("--incremental-pct", type=_positive(float), default=1.0, help="percent new + changed (default 1)")
    p.add_argument(
        "--pandas-method",
        choices=["default", "multi"],
        default="default",
        help='to_sql method: pandas\' default (batched executemany) or "multi" (much slower here; see README)',
    )
    p.add_argument("--timeout", type=_positive(float), default=3600.0, help="seconds before a run is killed")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server (no database)")
    p.add_argument("--mysql", default="mysql://root@127.0.0.1:3306", help="MariaDB/MySQL server (no database)")
    p.add_argument("--note", default="", help="a remark printed at the top of RESULTS.md (e.g. what else ran)")
    p.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md", help="the report to write")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: write the report again from the figures saved by the last run of this dataset and size",
    )
    return p


def parse_config(argv: list[str]) -> BenchConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        postgres, mariadb = Server.parse(args.pg, 5432), Server.parse(args.mysql, 3306)
    except ValueError as exc:
        parser.error(str(exc))
    command = shlex.join([os.environ.get("BENCH_LAUNCHER") or "bench/run_bench.py", *argv])
    return BenchConfig(
        sf=args.sf,
        runs=args.runs,
        competitor_runs=min(args.runs, args.competitor_runs or args.runs),
        sources=args.sources,
        approaches=args.approaches,
        incremental_runs=args.runs if args.incremental_runs is None else max(0, args.incremental_runs),
        incremental_pct=args.incremental_pct,
        timeout=args.timeout,
        pandas_method=args.pandas_method,
        postgres=postgres,
        mariadb=mariadb,
        command=command,
        results_file=args.results,
        note=args.note,
        report_only=args.report_only,
        dataset=args.dataset,
        rows=args.rows,
    )


def run(config: BenchConfig) -> BenchResult:
    """Generate, load the sources, run every phase; raises BenchFailure when our runner is wrong."""
    check_time_tool()
    shutil.rmtree(config.logs_dir, ignore_errors=True)
    config.logs_dir.mkdir(parents=True)
    result = BenchResult(
        sf=config.sf,
        runs=config.runs,
        competitor_runs=config.competitor_runs,
        command=config.command,
        started=_now(),
        note=config.note,
        dataset=config.dataset,
        scale=config.scale_label,
        description=config.data.description,
    )
    result.machine = machine.describe(config)
    data = config.data
    csv_file = dataset_csv(config.dataset, config.sf, config.rows, config.data_dir, config.work_dir)
    databases.recreate_postgres_databases(config.postgres)
    databases.load_postgres_source(config.postgres, data, csv_file)
    if "mysql" in config.sources:
        databases.load_mariadb_source(config.mariadb, data, csv_file)
        databases.cross_check_sources(config.postgres, config.mariadb, data)
    reference = databases.fingerprint(config.postgres, PG_SOURCE_DB, data, data.source_table)
    for source in config.sources:
        logger.info("== full loads from %s: %d run(s) each, alternating", source, config.runs)
        result.phases.append(run_full_phase(config, source, reference))
    if "ours" in config.approaches and config.incremental_runs:
        logger.info("== incremental runs of ours: %d", config.incremental_runs)
        pg = result.phase("pg")
        ours_loaded = bool(pg and pg.find("ours") and pg.find("ours").good_runs)  # type: ignore[union-attr]
        result.incremental = run_incremental(config, ours_loaded)
    result.finished = _now()
    result.machine["load average at end (1/5/15 min)"] = machine.load_average()
    return result


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def write_report(config: BenchConfig, result: BenchResult) -> None:
    history_dir = config.work_dir / "results"
    result.save(history_dir / config.results_name)
    history = []
    for path in sorted(history_dir.glob("*.json")):
        try:
            history.append(BenchResult.load(path))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring %s, an earlier result in another format (%s)", path, exc)
    same = [h for h in history if h.dataset == result.dataset and h.scale != result.scale]
    report.write(config.results_file, report.render(result, same))
    logger.info("wrote %s (raw figures: %s)", config.results_file, history_dir / config.results_name)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    config = parse_config(sys.argv[1:] if argv is None else argv)
    if config.report_only:
        saved = config.work_dir / "results" / config.results_name
        if not saved.is_file():
            logger.error("--report-only: no saved figures at %s; run the benchmark at %s first", saved,
                         config.scale_label)  # fmt: skip
            return 2
        result = BenchResult.load(saved)
        result.note = config.note or result.note
        write_report(config, result)
        return 0
    try:
        result = run(config)
    except RuntimeError as exc:  # BenchFailure included
        logger.error("BENCHMARK FAILED: %s", exc)
        return 1
    write_report(config, result)
    print(config.results_file.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
