"""The cost of ``profile: true``, PostgreSQL -> PostgreSQL, on the lineitem-shaped table of transform_cost.py.

Two variants of one project, run with the real script_runner.py in alternation (a b a b ...), each a
full load (replace) into its own schema; medians of the wall time, and of the profile query's own time
(the "profile ...: N columns in S s" line of the log):

    none        no profile
    profile     profile: true (one aggregate query over the rows written, in the load's transaction)

    .venv/bin/python bench/profile_cost.py --rows 1000000 --runs 3

It drops and re-creates the PostgreSQL databases etl_bench_pf_src and etl_bench_pf_dst, and drops them
at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transform_cost import DDL, GENERATE  # the same table and rows

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {"none": "", "profile": "    profile: true\n"}
PROJECT = """project: {name}
connections:
  src: {{}}
tables:
  - target: {name}.lineitem
    source: {{connection: src, table: public.lineitem}}
    strategy: replace
{extra}"""
PROFILE_LINE = re.compile(r"profile \S+: (\d+) columns in ([0-9.]+) s")
DATABASES = ("etl_bench_pf_src", "etl_bench_pf_dst")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="source rows")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant, alternating")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="the PostgreSQL server")
    args = parser.parse_args()
    src, dst = (f"{args.pg}/{name}" for name in DATABASES)
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        for name in DATABASES:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    try:
        return _measure(args, src, dst)
    finally:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            for name in DATABASES:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _measure(args: argparse.Namespace, src: str, dst: str) -> int:
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute("CREATE TABLE lineitem " + DDL.format(comment="varchar(44)"))
        conn.execute(GENERATE, {"rows": args.rows})
        conn.execute("VACUUM ANALYZE lineitem")
    with psycopg.connect(dst, autocommit=True) as conn:
        for name in VARIANTS:
            conn.execute(f"CREATE SCHEMA {name}")
            conn.execute(f"CREATE TABLE {name}.lineitem " + DDL.format(comment="text"))
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    queries: list[float] = []
    with tempfile.TemporaryDirectory() as home:
        for name, extra in VARIANTS.items():
            folder = Path(home) / "customer_code" / name
            folder.mkdir(parents=True)
            (folder / "project.yml").write_text(PROJECT.format(name=name, extra=extra), encoding="utf-8")
        env = {**os.environ, "ETL_HOME": home, "ETL_CONN_SRC": src, "ETL_CONN_WAREHOUSE": dst}
        env["ETL_PROGRESS_SECONDS"] = "3600"
        for run in range(args.runs):
            for name in VARIANTS:
                started = time.perf_counter()
                command = [sys.executable, str(ROOT / "script_runner.py"), "--project", name, "--load-type", "F"]
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                elapsed = time.perf_counter() - started
                if done.returncode != 0:
                    sys.stderr.write(done.stdout + done.stderr)
                    return 1
                times[name].append(elapsed)
                found = PROFILE_LINE.search(done.stdout + done.stderr)
                if found:
                    queries.append(float(found.group(2)))
                shown = f"  (profile query {found.group(2)} s, {found.group(1)} columns)" if found else ""
                print(f"run {run + 1} {name:8s} {elapsed:6.2f} s{shown}", flush=True)
    base = statistics.median(times["none"])
    print(f"\n{args.rows:,} rows, {args.runs} runs each, medians:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:8s} {median:6.2f} s  {args.rows / median:>10,.0f} rows/s  x{median / base:.2f} of none")
    if queries:
        print(f"  the profile query alone: median {statistics.median(queries):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
