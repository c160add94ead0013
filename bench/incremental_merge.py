"""Incremental merge benchmark: 10,000 changed rows merged into a 1M-row and a 6M-row PostgreSQL target.

Builds (once, then reuses) a sales-like source table per size in the scratch database ``etl_merge_src``
with ``generate_series``, and times ``script_runner.py --project bench_merge_<size> --load-type I`` of
two code versions side by side: the code at ``--old`` (exported with ``git archive`` into /tmp) and the
working tree. Before each incremental run it changes ``--changes`` source rows (half updated, half new,
all with a newer ``updated_at``). Per round and per version (the order alternates round by round):

* a full load (untimed), then one incremental run: the **cold** case (the first I after a full load);
* ``--warm`` more incremental runs: the **warm** case (after a previous I run).

After each round's runs of a version the target's row count and checksum must equal the source's. The merge statement's
own time is measured apart from the runs: the changed rows are staged in a temporary table and the
statement of each version runs under ``EXPLAIN (ANALYZE)`` in a transaction that is rolled back (old:
MERGE over a staging table that was never analyzed; new: what the working tree's connector picks).

    .venv/bin/python bench/incremental_merge.py --runs 5

Nothing outside the databases ``etl_merge_src`` and ``etl_merge_dst`` and /tmp is touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
PROJECTS = REPO / "bench" / "projects"
SIZES = {"1m": 1_000_000, "6m": 6_000_000, "20k": 20_000}  # 20k: a quick check that the script works

BUILD = """
CREATE TABLE {table} (
    id bigint PRIMARY KEY, customer_id integer NOT NULL, region text NOT NULL, product text NOT NULL,
    quantity integer NOT NULL, unit_price numeric(12,2) NOT NULL, amount numeric(14,4),
    discount numeric(5,4), note text, sold_at timestamp NOT NULL, updated_at timestamp NOT NULL
);
INSERT INTO {table}
SELECT g, (g * 7919) % 50000, (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4],
       'product ' || g % 1000 || CASE WHEN g % 97 = 0 THEN E'\\nsecond line' ELSE '' END,
       1 + g % 20, (g % 10000) / 100.0, CASE WHEN g % 13 = 0 THEN NULL ELSE (g % 100000) / 7.0 END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE (g % 30) / 100.0 END,
       CASE WHEN g % 3 = 0 THEN NULL WHEN g % 11 = 0 THEN E'multi\\nline "quoted", comma\\ttab'
            ELSE 'note ' || g END,
       timestamp '2024-01-01' + g * interval '1 second',
       timestamp '2025-01-01' + g * interval '2 second'
FROM generate_series(1::bigint, {rows}) AS g;
CREATE INDEX ON {table} (updated_at);
ANALYZE {table};
"""

# Half the changed rows are updates of existing rows (spread over the table), half are new rows.
CHANGE = """
UPDATE {table} SET amount = coalesce(amount, 0) + 1, note = E'changed\\n' || {round},
       updated_at = (now() AT TIME ZONE 'UTC') - interval '1 second'
WHERE id IN (SELECT (hashint8({round}::bigint * 1000003 + g) & 2147483647) % {base} + 1
             FROM generate_series(1, {updates}) AS g);
INSERT INTO {table}
SELECT m + g, g % 50000, 'north', E'new\\nproduct', 1, 9.99, NULL, 0.1, NULL,
       now() AT TIME ZONE 'UTC', (now() AT TIME ZONE 'UTC') - interval '1 second'
FROM (SELECT max(id) AS m FROM {table}) AS top, generate_series(1, {inserts}) AS g;
"""

CHECKSUM = "SELECT count(*), sum(hashtextextended(t::text, 0)) FROM {table} AS t"


@dataclass
class Figures:
    """Seconds per (size, case, version)."""

    times: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def add(self, size: str, case: str, version: str, seconds: float) -> None:
        self.times.setdefault((size, case, version), []).append(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database")
    parser.add_argument("--sizes", nargs="+", default=["1m", "6m"], choices=list(SIZES))
    parser.add_argument("--changes", type=int, default=10_000, help="changed rows per incremental run")
    parser.add_argument("--runs", type=int, default=5, help="rounds (each: full, cold I, warm Is) per version")
    parser.add_argument("--warm", type=int, default=2, help="warm incremental runs per round and version")
    parser.add_argument("--old", default="642e9e3", help="the commit to compare with")
    parser.add_argument("--build-only", action="store_true", help="build the source tables and stop")
    parser.add_argument("--statement-only", action="store_true", help="time the merge statements only (no runs)")
    parser.add_argument(
        "--warm-only", action="store_true", help="no full load and cold run per round (the target must be loaded)"
    )
    args = parser.parse_args()

    print(f"load average at start: {_load()}", flush=True)
    _ensure_database(args.pg, "etl_merge_src")
    _ensure_database(args.pg, "etl_merge_dst")
    for size in args.sizes:
        _build_source(args.pg, size)
    if args.build_only:
        return 0
    versions = {"old": _export(args.old), "new": REPO}
    home = _home()
    figures = Figures()
    for size in args.sizes:
        for round_no in range(1, 0 if args.statement_only else args.runs + 1):
            order = ["old", "new"] if round_no % 2 else ["new", "old"]
            for version in order:
                code = versions[version]
                if not args.warm_only:
                    _run(code, home, args.pg, size, "F")
                    _change(args.pg, size, args.changes, f"{version}{round_no}c")
                    figures.add(size, "cold", version, _run(code, home, args.pg, size, "I"))
                for warm in range(args.warm):
                    _change(args.pg, size, args.changes, f"{version}{round_no}w{warm}")
                    figures.add(size, "warm", version, _run(code, home, args.pg, size, "I"))
                _verify(args.pg, size)  # what a mismatch in any of these runs would leave stays until the next F
            print(f"{size} round {round_no}: load average {_load()}", flush=True)
        _merge_statement_times(args.pg, size, args.changes, args.runs, figures)
    _report(figures, args)
    return 0


def _load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def _url(pg: str, database: str) -> str:
    return f"{pg.rstrip('/')}/{database}"


def _ensure_database(pg: str, name: str) -> None:
    with psycopg.connect(_url(pg, "postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _build_source(pg: str, size: str) -> None:
    """The source table ``public.sales_<size>``, built once (kept across runs; changes only grow it)."""
    table = sql.Identifier(f"sales_{size}")
    with psycopg.connect(_url(pg, "etl_merge_src"), autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"public.sales_{size}",)).fetchone() != (None,):
            return
        started = time.perf_counter()
        with conn.transaction():
            for statement in BUILD.split(";\n"):
                if statement.strip():
                    conn.execute(sql.SQL(statement).format(table=table, rows=sql.Literal(SIZES[size])))  # type: ignore[arg-type]
        print(f"built sales_{size} ({SIZES[size]:,} rows) in {time.perf_counter() - started:.0f} s", flush=True)


def _change(pg: str, size: str, changes: int, tag: str) -> None:
    """Update ``changes // 2`` source rows and insert the rest, all newer than the last watermark."""
    table = sql.Identifier(f"sales_{size}")
    params = {"round": zlib.crc32(tag.encode()) % 1_000_000, "base": SIZES[size], "updates": changes // 2}
    params["inserts"] = changes - changes // 2
    with psycopg.connect(_url(pg, "etl_merge_src"), autocommit=True) as conn, conn.transaction():
        for statement in CHANGE.split(";\n"):
            if statement.strip():
                literals = {k: sql.Literal(v) for k, v in params.items()}
                conn.execute(sql.SQL(statement).format(table=table, **literals))  # type: ignore[arg-type]
    time.sleep(1.1)  # the changed rows' updated_at is a second in the past: let the window's end pass it


def _export(ref: str) -> Path:
    """The code at ``ref``, exported once into /tmp (not a worktree of the repository)."""
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, check=True, capture_output=True, text=True)
    target = Path(tempfile.gettempdir()) / f"etl_merge_old_{commit.stdout.strip()}"
    if not (target / "script_runner.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", ref], cwd=REPO, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def _home() -> Path:
    """A scratch ETL_HOME holding the benchmark projects (logs and locks stay out of the repository)."""
    home = Path(tempfile.gettempdir()) / "etl_merge_home"
    for part in ("customer_code", "warehouse"):
        shutil.copytree(PROJECTS / part, home / part, dirs_exist_ok=True)
    for size in SIZES:  # a size without its project in the repository (20k) gets the 1m one, renamed
        project = home / "customer_code" / f"bench_merge_{size}" / "project.yml"
        if not project.exists():
            project.parent.mkdir(parents=True, exist_ok=True)
            template = PROJECTS / "customer_code" / "bench_merge_1m" / "project.yml"
            project.write_text(template.read_text(encoding="utf-8").replace("1m", size), encoding="utf-8")
            ddl = (PROJECTS / "warehouse" / "bench_merge" / "sales_1m.sql").read_text(encoding="utf-8")
            (home / "warehouse" / "bench_merge" / f"sales_{size}.sql").write_text(
                ddl.replace("merge_1m", f"merge_{size}"), encoding="utf-8"
            )
    return home


def _run(code: Path, home: Path, pg: str, size: str, load_type: str) -> float:
    """One run of ``code``'s script_runner.py; its wall seconds."""
    env = {
        **os.environ,
        "ETL_HOME": str(home),
        "ETL_CONN_SRC": _url(pg, "etl_merge_src"),
        "ETL_CONN_WAREHOUSE": _url(pg, "etl_merge_dst"),
        "PYTHONPATH": str(code),
    }
    argv = [
        sys.executable,
        str(code / "script_runner.py"),
        "--project",
        f"bench_merge_{size}",
        "--load-type",
        load_type,
    ]
    for attempt in range(1, 4):
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode == 0:
            print(f"  {size} {load_type} {code.name}: {seconds:.3f} s", flush=True)
            return seconds
        # a failed run leaves the target as it was (its changes stay in the source for the next attempt);
        # on a shared server another session may end ours, so a failure is retried twice, and shown
        print(f"  {size} {load_type} {code.name}: attempt {attempt} failed (exit {done.returncode}):", flush=True)
        print("    " + "\n    ".join(done.stderr.strip().splitlines()[-3:]), flush=True)
    raise SystemExit(f"BENCHMARK FAILED: {code.name} {load_type} failed three times")


def _verify(pg: str, size: str) -> None:
    with psycopg.connect(_url(pg, "etl_merge_src")) as conn:
        source = conn.execute(sql.SQL(CHECKSUM).format(table=sql.Identifier(f"sales_{size}"))).fetchone()
    with psycopg.connect(_url(pg, "etl_merge_dst")) as conn:
        target = conn.execute(sql.SQL(CHECKSUM).format(table=sql.Identifier(f"merge_{size}", "sales"))).fetchone()
    if source != target:
        raise SystemExit(f"BENCHMARK FAILED: merge_{size}.sales {target} differs from the source {source}")


def _merge_statement_times(pg: str, size: str, changes: int, runs: int, figures: Figures) -> None:
    """The merge statement alone: stage ``changes`` rows (half existing keys spread over the table, half
    new), then run each version's statement under EXPLAIN ANALYZE, rolled back; alternating, ``runs``
    times each."""
    sys.path.insert(0, str(REPO))
    from sqlalchemy import create_engine

    from connectors.postgresql import merge_statement

    engine = create_engine(_url(pg, "etl_merge_dst").replace("postgresql://", "postgresql+psycopg://"))
    columns = ["id", "customer_id", "region", "product", "quantity", "unit_price", "amount", "discount", "note"]
    columns += ["sold_at", "updated_at"]
    target = f"merge_{size}.sales"
    for round_no in range(runs):
        for version in ["old", "new"] if round_no % 2 == 0 else ["new", "old"]:
            with engine.connect() as conn, conn.begin() as tx:
                conn.exec_driver_sql(f"CREATE TEMPORARY TABLE stage ON COMMIT DROP AS SELECT * FROM {target} LIMIT 0")
                conn.exec_driver_sql(
                    f"INSERT INTO stage SELECT * FROM {target} WHERE id IN (SELECT (hashint8({round_no}::bigint "
                    f"* 1000003 + g) & 2147483647) %% {SIZES[size]} + 1 FROM generate_series(1, {changes // 2}) AS g)"
                )
                conn.exec_driver_sql(
                    f"INSERT INTO stage SELECT id + 1000000000, customer_id, region, product, quantity, unit_price, "
                    f"amount, discount, note, sold_at, updated_at FROM {target} LIMIT {changes - changes // 2}"
                )
                if version == "new":
                    conn.exec_driver_sql("ANALYZE stage")
                    text = merge_statement(conn, target, "stage", columns, ["id"])[0]
                else:
                    text = _old_merge(target, columns)
                plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {text}").scalar_one()
                figures.add(size, "merge statement", version, plan[0]["Execution Time"] / 1000)
                top = plan[0]["Plan"]  # buffers of the whole statement: the machine's load does not move them
                figures.add(
                    size, "merge statement: pages", version, top["Shared Hit Blocks"] + top["Shared Read Blocks"]
                )
                tx.rollback()
    engine.dispose()


def _old_merge(target: str, columns: list[str]) -> str:
    """The statement of the old code (connectors/postgresql.py at 642e9e3)."""
    updates = ", ".join(f'"{c}" = s."{c}"' for c in columns if c != "id")
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(f's."{c}"' for c in columns)
    return (
        f'MERGE INTO {target} AS t USING stage AS s ON t."id" = s."id" WHEN MATCHED THEN UPDATE SET {updates} '
        f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    )


def _report(figures: Figures, args: argparse.Namespace) -> None:
    print(f"\nload average at the end: {_load()}")
    warm = args.runs * args.warm
    print(f"{args.changes:,} changed rows; medians of {args.runs} (cold, merge statement) and {warm} (warm)")
    print("| target | case | old (s) | new (s) | new / old | all new runs (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        for case in ("cold", "warm", "merge statement", "merge statement: pages"):
            old = figures.times.get((size, case, "old"), [])
            new = figures.times.get((size, case, "new"), [])
            if not (old and new):
                continue
            m_old, m_new = statistics.median(old), statistics.median(new)
            every = ", ".join(f"{t:.3f}" for t in new)
            print(f"| {size} | {case} | {m_old:.3f} | {m_new:.3f} | {m_new / m_old:.2f} | {every} |")


if __name__ == "__main__":
    raise SystemExit(main())
