"""Start-up and fixed cost: ``--list``, ``--dry-run`` and a 1-row PostgreSQL -> PostgreSQL run.

Each command runs with the real script_runner.py, in alternation between this checkout and an
optional older one (``--old DIR``, e.g. ``git archive main | tar -x -C /tmp/old``), and the median
wall time and CPU time (user + system: less sensitive to other load on the machine) of each are
printed with the load average. ``--statements`` also counts the SQL statements
one run sends to each database, from the server's own log (``log_statement = all`` set on the two
bench databases for that one run, then reset; read from ``--server-log``).

    .venv/bin/python bench/startup.py --runs 10 [--old /tmp/old] [--statements]

It drops and re-creates the PostgreSQL databases etl_bench_start_src and etl_bench_start_dst.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DATABASES = ("etl_bench_start_src", "etl_bench_start_dst")
PROJECT = """project: start_pg
description: one table, one row, PostgreSQL -> PostgreSQL (start-up bench)
connections:
  src: {}
tables:
  - target: items
    source: {connection: src, table: public.items}
    strategy: merge
    keys: [id]
    cursor: updated_at
"""
COMMANDS = {
    "list": ["--list"],
    "dry-run": ["--project", "start_pg", "--dry-run"],
    "run 1 row": ["--project", "start_pg", "--load-type", "F"],
}
MERGE_1_ROW = ["--project", "start_pg", "--start-date", "2025-12-31", "--end-date", "2026-01-02"]  # staged, merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (and of each checkout)")
    parser.add_argument("--old", type=Path, help="an older checkout to alternate with (same virtual environment)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="the PostgreSQL server")
    parser.add_argument("--statements", action="store_true", help="count the statements of one run per checkout")
    parser.add_argument("--server-log", type=Path, default=Path("/var/log/postgresql/postgresql-15-main.log"))
    args = parser.parse_args()
    src, dst = (f"{args.pg}/{name}" for name in DATABASES)
    _create(args.pg, src)
    checkouts = {"new": ROOT} | ({"old": args.old.resolve()} if args.old else {})
    with tempfile.TemporaryDirectory() as home:
        folder = Path(home) / "customer_code" / "start_pg"
        folder.mkdir(parents=True)
        (folder / "project.yml").write_text(PROJECT, encoding="utf-8")
        env = {**os.environ, "ETL_HOME": home, "ETL_CONN_SRC": src, "ETL_CONN_WAREHOUSE": dst}
        env["ETL_PROGRESS_SECONDS"] = "3600"
        for checkout in checkouts.values():  # the audit tables exist before anything is timed
            _run(checkout, COMMANDS["run 1 row"], env)
        if args.statements:
            for label, checkout in checkouts.items():
                for name, argv in (("full (replace)", COMMANDS["run 1 row"]), ("incremental (merge)", MERGE_1_ROW)):
                    counted = _statements(args, checkout, argv, env)
                    print(f"statements of one 1-row {name} run ({label}): {counted}", flush=True)
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.runs):
            for command, argv in COMMANDS.items():
                for label, checkout in checkouts.items():
                    times.setdefault((command, label), []).append(_run(checkout, argv, env))
    print(f"\nmedians of {args.runs} runs, load average {os.getloadavg()[0]:.2f} (1 min) at the end:")
    for (command, label), values in times.items():
        wall, cpu = ([v[i] for v in values] for i in (0, 1))
        print(
            f"  {command:10s} {label:4s} wall {statistics.median(wall):6.3f} s (min {min(wall):.3f}), "
            f"CPU {statistics.median(cpu):6.3f} s (min {min(cpu):.3f})"
        )
    return 0


def _create(server: str, src: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        for name in DATABASES:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id integer PRIMARY KEY, name text, updated_at timestamp NOT NULL)")
        conn.execute("INSERT INTO items VALUES (1, 'one', timestamp '2026-01-01 08:00')")


def _run(checkout: Path, argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of script_runner.py."""
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(checkout / "script_runner.py"), *argv], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{checkout} {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return elapsed, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _statements(args: argparse.Namespace, checkout: Path, argv: list[str], env: dict[str, str]) -> dict[str, int]:
    """The statements one run sends to each bench database, as the server logs them."""
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        for name in DATABASES:
            conn.execute(f"ALTER DATABASE {name} SET log_statement = 'all'")
    offset = args.server_log.stat().st_size
    try:
        _run(checkout, argv, env)
        time.sleep(0.5)  # the server writes its log asynchronously
    finally:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            for name in DATABASES:
                conn.execute(f"ALTER DATABASE {name} RESET log_statement")
    with args.server_log.open("rb") as log:
        log.seek(offset)
        text = log.read().decode("utf-8", "replace")
    counts = {name: 0 for name in DATABASES}
    for match in re.finditer(r"@(etl_bench_start_\w+) LOG:  (?:statement|execute [^:]*):", text):
        counts[match.group(1)] += 1
    return {name.removeprefix("etl_bench_start_"): count for name, count in counts.items()}


if __name__ == "__main__":
    sys.exit(main())
