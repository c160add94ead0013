"""Tables at once: 8 tables PostgreSQL -> PostgreSQL, ``parallel: 1`` against ``parallel: 4``.

Two projects load the same 8 source tables (a mixed ``sales``-like shape: integers, numeric, text with
NULLs, a date and a timestamp), each into its own schema with ``strategy: replace``, run with the real
script_runner.py in alternation (serial, parallel, serial, ...), after one untimed run of each that
creates the targets. Prints every run with the CPU time of the runner's process (not the servers') and
the load average at its start, and the medians:

    .venv/bin/python bench/parallel_tables.py --rows 250000 --tables 8 --runs 5
    .venv/bin/python bench/parallel_tables.py --rows 50000 --tables 8 --runs 5 --source-wait 2

It drops and re-creates the PostgreSQL databases etl_bench_par_src and etl_bench_par_dst.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
GENERATE = """
CREATE TABLE {name} AS
SELECT g AS sale_id, g %% 5000 + 1 AS customer_id, g %% 700 + 1 AS product_id,
       (g %% 17 + 1)::integer AS quantity, ((g %% 100000) * 1.37)::numeric(14,2) AS amount,
       CASE WHEN g %% 10 = 0 THEN NULL ELSE ((g %% 30) / 100.0)::numeric(5,2) END AS discount,
       (ARRAY['web','store','phone','partner'])[g %% 4 + 1] AS channel,
       CASE WHEN g %% 7 = 0 THEN NULL ELSE 'note ' || md5(g::text) END AS note,
       date '2024-01-01' + g %% 700 AS sale_date,
       timestamp '2024-01-01' + g * interval '7 seconds' AS updated_at
FROM generate_series(1, %(rows)s) AS g
"""
PROJECT = """project: {name}
connections:
  src: {{}}
parallel: {parallel}
tables:
{tables}"""
VARIANTS = {"serial": 1, "parallel": 4}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000, help="rows of each source table")
    parser.add_argument("--tables", type=int, default=8, help="source tables")
    parser.add_argument("--parallel", type=int, default=4, help="parallel: of the second variant")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each variant, alternating")
    parser.add_argument(
        "--source-wait",
        type=float,
        default=0.0,
        help="seconds each source waits before its first row (a view with pg_sleep: a remote or busy source)",
    )
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="the PostgreSQL server")
    args = parser.parse_args()
    VARIANTS["parallel"] = args.parallel
    src, dst = f"{args.pg}/etl_bench_par_src", f"{args.pg}/etl_bench_par_dst"
    names = [f"sales_{i}" for i in range(args.tables)]
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        for database in ("etl_bench_par_src", "etl_bench_par_dst"):
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {database}")
    with psycopg.connect(src, autocommit=True) as conn:
        for name in names:
            conn.execute(GENERATE.format(name=name), {"rows": args.rows})
            conn.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (sale_id)")
            conn.execute(f"VACUUM ANALYZE {name}")
            if args.source_wait > 0:  # a float from argparse, not text: safe to write into the view
                conn.execute(
                    f"CREATE VIEW wait_{name} AS SELECT t.* FROM {name} t CROSS JOIN pg_sleep({args.source_wait})"
                )
    with psycopg.connect(dst, autocommit=True) as conn:
        for variant in VARIANTS:
            conn.execute(f"CREATE SCHEMA {variant}")
    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    prefix = "public.wait_" if args.source_wait > 0 else "public."
    with tempfile.TemporaryDirectory() as home:
        for variant, parallel in VARIANTS.items():
            tables = "".join(
                f"  - {{target: {variant}.{n}, source: {{connection: src, table: {prefix}{n}}}, strategy: replace}}\n"
                for n in names
            )
            folder = Path(home) / "customer_code" / variant
            folder.mkdir(parents=True)
            text = PROJECT.format(name=variant, parallel=parallel, tables=tables)
            (folder / "project.yml").write_text(text, encoding="utf-8")
        env = {**os.environ, "ETL_HOME": home, "ETL_CONN_SRC": src, "ETL_CONN_WAREHOUSE": dst}
        env["ETL_PROGRESS_SECONDS"] = "3600"
        for run in range(args.runs + 1):  # run 0 creates the targets: not timed
            for variant in VARIANTS:
                load = os.getloadavg()[0]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                command = [sys.executable, str(ROOT / "script_runner.py"), "--project", variant, "--load-type", "F"]
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                elapsed = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                if done.returncode != 0:
                    sys.stderr.write(done.stdout + done.stderr)
                    return 1
                if run:
                    times[variant].append(elapsed)
                shown = f"run {run}" if run else "warm-up"
                print(
                    f"{shown:8s} {variant:9s} {elapsed:6.2f} s  runner CPU {cpu:5.2f} s  load average {load:.2f}",
                    flush=True,
                )
    serial = statistics.median(times["serial"])
    total = args.rows * args.tables
    waits = f", each source waiting {args.source_wait:g} s" if args.source_wait > 0 else ""
    print(f"\n{args.tables} tables x {args.rows:,} rows{waits}, {args.runs} runs each, medians:")
    for variant, values in times.items():
        median = statistics.median(values)
        label = f"{variant} (parallel: {VARIANTS[variant]})"
        print(f"  {label:24s} {median:6.2f} s  {total / median:>10,.0f} rows/s  x{median / serial:.2f} of serial")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
