"""The cost of transforms in flight, PostgreSQL -> PostgreSQL, on a lineitem-shaped table.

Three variants of one project, run with the real script_runner.py in alternation (a b c a b c ...),
each a full load (replace) into its own schema; medians of the wall time per variant:

    none        no transform: COPY pass-through (binary)
    rows        select: every column: the rows path, no value changed (what leaving COPY costs)
    trim_hash   trim: on l_shipinstruct and hash: on l_comment (HMAC-SHA256 with ETL_PII_KEY)

    .venv/bin/python bench/transform_cost.py --rows 600000 --runs 5

It drops and re-creates the PostgreSQL databases etl_bench_tx_src and etl_bench_tx_dst.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = (
    "l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, "
    "l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, "
    "l_comment, updated_at"
)
DDL = """(
    l_orderkey bigint NOT NULL, l_partkey integer NOT NULL, l_suppkey integer NOT NULL, l_linenumber integer NOT NULL,
    l_quantity numeric(15,2) NOT NULL, l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL,
    l_tax numeric(15,2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL,
    l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
    l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, l_comment {comment} NOT NULL,
    updated_at timestamp NOT NULL, PRIMARY KEY (l_orderkey, l_linenumber))"""
GENERATE = f"""
INSERT INTO lineitem ({COLUMNS})
SELECT g / 4 + 1, (g * 7) %% 200000 + 1, (g * 13) %% 10000 + 1, g %% 4 + 1,
       (g %% 50 + 1)::numeric(15,2), ((g %% 100000) * 1.37)::numeric(15,2), ((g %% 11) / 100.0)::numeric(15,2),
       ((g %% 9) / 100.0)::numeric(15,2), (ARRAY['A','N','R'])[g %% 3 + 1], (ARRAY['F','O'])[g %% 2 + 1],
       date '1992-01-01' + g %% 2500, date '1992-02-01' + g %% 2500, date '1992-03-01' + g %% 2500,
       (ARRAY['DELIVER IN PERSON','COLLECT COD','NONE','TAKE BACK RETURN'])[g %% 4 + 1],
       (ARRAY['AIR','MAIL','SHIP','TRUCK','RAIL','FOB','REG AIR'])[g %% 7 + 1],
       md5(g::text) || ' carefully', timestamp '1992-03-01' + g * interval '1 minute'
FROM generate_series(0, %(rows)s - 1) AS g
"""
VARIANTS = {
    "none": "",
    "rows": f"    select: [{COLUMNS}]\n",
    "trim_hash": "    columns:\n      l_shipinstruct: {trim: true}\n      l_comment: {hash: true}\n",
}
PROJECT = """project: {name}
connections:
  src: {{}}
tables:
  - target: {name}.lineitem
    source: {{connection: src, table: public.lineitem}}
    strategy: replace
{extra}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600_000, help="source rows (TPC-H SF 0.1 is about 600,000)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each variant, alternating")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="the PostgreSQL server")
    args = parser.parse_args()
    src, dst = f"{args.pg}/etl_bench_tx_src", f"{args.pg}/etl_bench_tx_dst"
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        for name in ("etl_bench_tx_src", "etl_bench_tx_dst"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute("CREATE TABLE lineitem " + DDL.format(comment="varchar(44)"))
        conn.execute(GENERATE, {"rows": args.rows})
        conn.execute("VACUUM ANALYZE lineitem")
    with psycopg.connect(dst, autocommit=True) as conn:
        for name in VARIANTS:
            conn.execute(f"CREATE SCHEMA {name}")
            conn.execute(f"CREATE TABLE {name}.lineitem " + DDL.format(comment="text"))
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as home:
        for name, extra in VARIANTS.items():
            folder = Path(home) / "customer_code" / name
            folder.mkdir(parents=True)
            (folder / "project.yml").write_text(PROJECT.format(name=name, extra=extra), encoding="utf-8")
        env = {
            **os.environ,
            "ETL_HOME": home,
            "ETL_CONN_SRC": src,
            "ETL_CONN_WAREHOUSE": dst,
            "ETL_PII_KEY": "bench-only-key-0123456789abcdefghijklmnopqrstuv",
            "ETL_PROGRESS_SECONDS": "3600",
        }
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
                print(f"run {run + 1} {name:10s} {elapsed:6.2f} s", flush=True)
    base = statistics.median(times["none"])
    print(f"\n{args.rows:,} rows, {args.runs} runs each, medians:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:10s} {median:6.2f} s  {args.rows / median:>10,.0f} rows/s  x{median / base:.2f} of none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
