"""The cost of ``profile: true``, PostgreSQL -> PostgreSQL, on the lineitem-shaped table of transform_cost.py.

Two variants of one project, run with the real script_runner.py in alternation (a b a b ...), each a
full load (replace) into its own schema; medians of the wall time, of the CPU time of the run's
PostgreSQL backends on the target database (utime + stime from /proc/<pid>/stat, sampled every 50 ms
while the run lasts: the machine may be shared, so the wall time is noisy and the CPU time is not), and
of the profile step's own time (the "profile ...: N columns in S s" line of the log). The load average
is printed with each run. At the end, each column's distinct count in etl_profiles (an estimate) is
compared with the exact ``count(DISTINCT ...)`` of the loaded table:

    none        no profile
    profile     profile: true (one aggregate query over the rows written, in the load's transaction,
                and the distinct counts from ANALYZE's sample)

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
import threading
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
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
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
                with BackendCpu(f"{args.pg}/postgres", DATABASES[1]) as backend:
                    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                elapsed = time.perf_counter() - started
                if done.returncode != 0:
                    sys.stderr.write(done.stdout + done.stderr)
                    return 1
                times[name].append(elapsed)
                cpu[name].append(backend.seconds)
                found = PROFILE_LINE.search(done.stdout + done.stderr)
                if found:
                    queries.append(float(found.group(2)))
                shown = f"  (profile step {found.group(2)} s, {found.group(1)} columns)" if found else ""
                load = Path("/proc/loadavg").read_text().split()[0]
                print(f"run {run + 1} {name:8s} {elapsed:6.2f} s  backend CPU {backend.seconds:6.2f} s  "
                      f"load {load}{shown}", flush=True)  # fmt: skip
    base, base_cpu = statistics.median(times["none"]), statistics.median(cpu["none"])
    print(f"\n{args.rows:,} rows, {args.runs} runs each, medians:")
    for name, values in times.items():
        median, used = statistics.median(values), statistics.median(cpu[name])
        print(f"  {name:8s} {median:6.2f} s  {args.rows / median:>10,.0f} rows/s  x{median / base:.2f} of none"
              f"   backend CPU {used:6.2f} s  x{used / base_cpu:.2f}")  # fmt: skip
    if queries:
        print(f"  the profile step alone: median {statistics.median(queries):.2f} s")
    _distinct_errors(dst)
    return 0


def _distinct_errors(dst: str) -> None:
    """Each column's distinct count in the last profile against the exact count of the loaded table."""
    with psycopg.connect(dst) as conn:
        found = conn.execute(
            "SELECT column_name, distinct_count FROM etl_profiles WHERE run_id = (SELECT max(run_id) FROM "
            "etl_profiles WHERE table_name = 'profile.lineitem') AND table_name = 'profile.lineitem' "
            "ORDER BY column_name"
        ).fetchall()
        if not found:
            return
        print("\ndistinct count: estimate (etl_profiles) / exact, relative error")
        worst = 0.0
        for column, estimate in found:
            exact = conn.execute(f'SELECT count(DISTINCT "{column}") FROM profile.lineitem').fetchone()
            assert exact is not None
            error = (estimate - exact[0]) / exact[0] if estimate is not None and exact[0] else 0.0
            worst = max(worst, abs(error))
            print(f"  {column:18s} {estimate!s:>10s} / {exact[0]:>10,d}  {error:+7.1%}")
        print(f"  worst: {worst:.1%}")


class BackendCpu:
    """The CPU seconds (user + system) of the backends connected to ``database`` while the block runs,
    sampled from /proc every 50 ms (a backend that ends between two samples loses at most 50 ms)."""

    def __init__(self, admin: str, database: str) -> None:
        self.admin, self.database = admin, database
        self.ticks: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def seconds(self) -> float:
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> BackendCpu:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()

    def _sample(self) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            mine = conn.info.backend_pid
            while True:
                last = self.stop.wait(0.05)
                pids = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,))
                for (pid,) in pids.fetchall():
                    if pid == mine:
                        continue
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        continue  # ended
                    self.ticks[pid] = max(self.ticks.get(pid, 0), int(fields[11]) + int(fields[12]))
                if last:
                    return


if __name__ == "__main__":
    sys.exit(main())
