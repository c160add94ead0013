"""The approaches compared: how each one is launched as a child process, where it loads, how it is checked."""

from __future__ import annotations

import functools
import importlib.util
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from harness import databases
from harness.config import BENCH_DIR, MARIADB_DB, PG_CLONE_DB, PG_SOURCE_DB, PG_TARGET_DB, REPO_DIR, BenchConfig

KEYS = (
    "pipe", "pipe_binary", "ours", "pgcopydb", "pgcopydb_clone", "pgloader", "pandas", "dlt_default", "dlt_pyarrow",
    "sling",
)  # fmt: skip
# every timed run, like ours: the raw pipes and the specialist tools (pandas, dlt, Sling: --competitor-runs)
EVERY_RUN = ("pipe", "pipe_binary", "pgcopydb", "pgcopydb_clone", "pgloader")
PG_ONLY = ("pipe_binary", "pgcopydb", "pgcopydb_clone")
MYSQL_ONLY = ("pgloader",)
# names for several approaches at once in --approaches
GROUPS = {
    "pipes": ("pipe", "pipe_binary"),
    "specialists": ("pgcopydb", "pgcopydb_clone", "pgloader"),
    "python": ("pandas", "dlt_default", "dlt_pyarrow"),
}
SOURCES = ("pg", "mysql")


class Verify(StrEnum):
    CHECKSUM = "checksum"  # the target has the dataset's DDL: row count and checksum equal the source's
    COUNT = "count"  # the tool creates its own table and types: row count equals the source's


class Prepare(StrEnum):
    TRUNCATE = "truncate"  # the target table is emptied before the run
    DROP_SCHEMA = "drop_schema"  # the tool's schema is dropped (and its local state removed)
    RECREATE_DATABASE = "recreate_database"  # the tool's target database is dropped and created empty


@dataclass(frozen=True)
class Approach:
    """One way of moving the dataset's table from a source into the PostgreSQL target."""

    key: str
    label: str
    source: str  # "pg" or "mysql"
    target: str  # schema.table in the target database
    verify: Verify
    prepare: Prepare
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    ours: bool = False
    skip_reason: str | None = None
    database: str = PG_TARGET_DB  # the target database (pgcopydb clone has its own)
    scratch: tuple[str, ...] = ()  # folders the tool keeps state in: removed before each run

    @property
    def schema(self) -> str:
        return self.target.split(".")[0]

    @property
    def name(self) -> str:
        return f"{self.source}:{self.key}"


def build(config: BenchConfig, source: str) -> list[Approach]:
    """The selected approaches for ``source`` ("pg" or "mysql"), in the order they alternate."""
    makers = {
        "pipe": _pipe,
        "pipe_binary": _binary_pipe,
        "ours": _ours,
        "pandas": _pandas,
        "dlt_default": lambda c, s: _dlt(c, s, "sqlalchemy"),
        "dlt_pyarrow": lambda c, s: _dlt(c, s, "pyarrow"),
        "sling": _sling,
        "pgcopydb": _pgcopydb,
        "pgcopydb_clone": _pgcopydb_clone,
        "pgloader": _pgloader,
    }
    keys = [
        key
        for key in KEYS
        if key in config.approaches
        and not (key in PG_ONLY and source != "pg")
        and not (key in MYSQL_ONLY and source != "mysql")
    ]
    return [makers[key](config, source) for key in keys]


@functools.cache
def runner_python() -> str:
    """The python a user's launcher runs (``script_runner/_venv.sh requirements.txt``: the repository's
    ``.venv``, made or brought up to date first), not the benchmark's own environment: bench/.venv also
    holds pandas, numpy, dlt and DuckDB, and pyarrow imports numpy when it is there (about 11 MB more RSS
    for ours than a user sees)."""
    done = subprocess.run(
        [str(REPO_DIR / "script_runner" / "_venv.sh"), "requirements.txt"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        sys.stderr.write(f"bench: the runner's .venv could not be made; ours runs in bench/.venv\n{done.stderr}")
        return sys.executable
    return done.stdout.strip().splitlines()[-1]


def ours_command(config: BenchConfig, source: str, load_type: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """``script_runner.py`` for the bench project of ``source``, as a user runs it, and its environment."""
    project = config.data.projects[source]
    src_url = config.postgres.url(PG_SOURCE_DB) if source == "pg" else config.mariadb.url(MARIADB_DB)
    argv = (runner_python(), str(REPO_DIR / "script_runner.py"), "--project", project, "--load-type", load_type)
    env = {
        "ETL_HOME": str(config.projects_dir),
        "ETL_CONN_WAREHOUSE": config.postgres.url(PG_TARGET_DB),
        "ETL_CONN_SRC": src_url,
    }
    return argv, env


def _prefix(source: str) -> str:
    return "pgsrc" if source == "pg" else "mysrc"


def _pipe(config: BenchConfig, source: str) -> Approach:
    data = config.data
    target = data.target(f"{_prefix(source)}_raw")
    if source == "pg":
        sink = shlex.join(
            [*config.postgres.psql_args(PG_TARGET_DB), "-c", f"\\copy {target} ({data.column_list}) from stdin"]
        )
        select = f"\\copy (select {data.column_list} from {data.source_table}) to stdout"
        reader = shlex.join([*config.postgres.psql_args(PG_SOURCE_DB), "-c", select])
        label = "(a) psql \\copy pipe (the reference)"
    else:
        # mysql --batch escapes tab, newline, backslash and NUL as COPY's text format does, and prints NULL
        # as the bare word NULL (a text "NULL" does not occur in the generated data)
        sink = shlex.join(
            [
                *config.postgres.psql_args(PG_TARGET_DB),
                "-c",
                f"\\copy {target} ({data.column_list}) from stdin with (null 'NULL')",
            ]
        )
        select = f"select {data.column_list} from {data.table}"
        reader = shlex.join(
            [
                *config.mariadb.mysql_args(MARIADB_DB),
                "--default-character-set=utf8mb4",
                "--batch",
                "--quick",
                "--skip-column-names",
                "-e",
                select,
            ]
        )
        label = "mysql --batch --quick | psql \\copy pipe"
    missing = [c for c in ("bash", "psql", "psql" if source == "pg" else "mysql") if shutil.which(c) is None]
    return Approach(
        key="pipe",
        label=label,
        source=source,
        target=target,
        verify=Verify.CHECKSUM,
        prepare=Prepare.TRUNCATE,
        argv=("bash", "-o", "pipefail", "-c", f"{reader} | {sink}"),
        env={**config.postgres.client_env(), **config.mariadb.client_env()},
        skip_reason=f"{', '.join(sorted(set(missing)))} not found on PATH" if missing else None,
    )


def _binary_pipe(config: BenchConfig, source: str) -> Approach:
    """PostgreSQL's binary COPY format on both ends: no text to format or parse (types are identical)."""
    data = config.data
    target = data.target("pgsrc_rawbin")
    select = f"\\copy (select {data.column_list} from {data.source_table}) to stdout with (format binary)"
    reader = shlex.join([*config.postgres.psql_args(PG_SOURCE_DB), "-c", select])
    sink = shlex.join(
        [
            *config.postgres.psql_args(PG_TARGET_DB),
            "-c",
            f"\\copy {target} ({data.column_list}) from stdin with (format binary)",
        ]
    )
    missing = [c for c in ("bash", "psql") if shutil.which(c) is None]
    return Approach(
        key="pipe_binary",
        label="(a2) psql \\copy pipe, binary format",
        source=source,
        target=target,
        verify=Verify.CHECKSUM,
        prepare=Prepare.TRUNCATE,
        argv=("bash", "-o", "pipefail", "-c", f"{reader} | {sink}"),
        env=config.postgres.client_env(),
        skip_reason=f"{', '.join(sorted(set(missing)))} not found on PATH" if missing else None,
    )


def _ours(config: BenchConfig, source: str) -> Approach:
    argv, env = ours_command(config, source, "F")
    return Approach(
        key="ours",
        label="(b) our runner: script_runner.py --load-type F",
        source=source,
        target=config.data.target(f"{_prefix(source)}_ours"),
        verify=Verify.CHECKSUM,
        prepare=Prepare.TRUNCATE,
        argv=argv,
        env=env,
        ours=True,
    )


def _source_url(config: BenchConfig, source: str, pg_driver: str | None) -> str:
    if source == "pg":
        return config.postgres.url(PG_SOURCE_DB, pg_driver)
    return config.mariadb.url(MARIADB_DB, "pymysql")


def _pandas(config: BenchConfig, source: str) -> Approach:
    schema = f"{_prefix(source)}_pandas"
    argv = (
        sys.executable, str(BENCH_DIR / "approaches" / "pandas_load.py"),
        "--source-url", _source_url(config, source, "psycopg"),
        "--target-url", config.postgres.url(PG_TARGET_DB, "psycopg"),
        "--target-schema", schema,
        "--method", config.pandas_method,
        "--table", config.data.table,
        "--columns", config.data.column_list,
    )  # fmt: skip
    shown = 'method="multi", chunksize=2000' if config.pandas_method == "multi" else "chunksize=10000"
    return Approach(
        key="pandas",
        label=f"(c) pandas read_sql(chunksize=100000) + to_sql({shown})",
        source=source,
        target=config.data.target(schema),
        verify=Verify.CHECKSUM,
        prepare=Prepare.TRUNCATE,
        argv=argv,
    )


def _dlt(config: BenchConfig, source: str, backend: str) -> Approach:
    flavour = "default" if backend == "sqlalchemy" else backend
    dataset = f"{_prefix(source)}_dlt_{flavour}"
    # dlt insists on a password for its postgres destination; trust authentication ignores this one
    target = config.postgres if config.postgres.password else replace(config.postgres, password="unused")
    argv = [
        sys.executable, str(BENCH_DIR / "approaches" / "dlt_load.py"),
        "--source-url", _source_url(config, source, None),
        "--target-url", target.url(PG_TARGET_DB),
        "--dataset", dataset,
        "--backend", backend,
        "--pipelines-dir", str(config.work_dir / "dlt" / dataset),
        "--table", config.data.table,
    ]  # fmt: skip
    if source == "pg":
        argv += ["--source-schema", "public"]
    return Approach(
        key=f"dlt_{flavour}",
        label=f"(d) dlt sql_database, {flavour} backend" + (" (sqlalchemy)" if flavour == "default" else ""),
        source=source,
        target=config.data.target(dataset),
        verify=Verify.COUNT,
        prepare=Prepare.DROP_SCHEMA,
        argv=tuple(argv),
        env={"RUNTIME__DLTHUB_TELEMETRY": "false", "DLT_DATA_DIR": str(config.work_dir / "dlt" / "data")},
    )


def sling_binary() -> tuple[str | None, str | None]:
    """The Sling binary shipped by the ``sling-linux-amd64`` package, or (None, why it is missing)."""
    spec = importlib.util.find_spec("sling_linux_amd64")
    if spec is None:
        return None, (
            "the PyPI-packaged Sling binary (sling-linux-amd64) is not installed; it exists for Linux x86_64 only, "
            "and the plain 'sling' package downloads its binary on first use, which this machine cannot do"
        )
    import sling_linux_amd64

    return str(sling_linux_amd64.SLING_BIN), None


def _sling(config: BenchConfig, source: str) -> Approach:
    binary, reason = sling_binary()
    schema = f"{_prefix(source)}_sling"
    stream = config.data.source_table if source == "pg" else f"{MARIADB_DB}.{config.data.table}"
    argv = (
        binary or "sling", "run",
        "--src-conn", "BENCH_SRC", "--src-stream", stream,
        "--tgt-conn", "BENCH_DST", "--tgt-object", config.data.target(schema),
        "--mode", "full-refresh",
    )  # fmt: skip
    src_url = _source_url(config, source, None).replace("mysql+pymysql://", "mysql://")
    return Approach(
        key="sling",
        label="(e) Sling CLI (PyPI-packaged binary)",
        source=source,
        target=config.data.target(schema),
        verify=Verify.COUNT,
        prepare=Prepare.DROP_SCHEMA,
        argv=argv,
        env={
            "BENCH_SRC": _sslmode(src_url, source),
            "BENCH_DST": _sslmode(config.postgres.url(PG_TARGET_DB), "pg"),
            "SLING_HOME_DIR": str(config.work_dir / "sling"),
            "SLING_DISABLE_TELEMETRY": "true",
        },
        skip_reason=reason,
    )


def _sslmode(url: str, source: str) -> str:
    return f"{url}?sslmode=disable" if source == "pg" else url


def _pgcopydb_binary() -> tuple[str | None, str | None]:
    """pgcopydb from Debian's package: on the PATH, or in PostgreSQL's bin folder; else (None, why not)."""
    found = shutil.which("pgcopydb") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgcopydb"), reverse=True)), None
    )
    return (found, None) if found else (None, "pgcopydb not found (Debian/Ubuntu: apt-get install pgcopydb)")


def _pgcopydb_filters(config: BenchConfig) -> Path:
    """A filter file naming the dataset's table only (nothing else of the source is copied).

    ``clone`` still builds every index of that table, the source's index on the cursor included: pgcopydb
    0.10 ignores an ``[exclude-index]`` section here (tried), so its target has one index more than the
    others' (see bench/README.md)."""
    path = config.work_dir / "pgcopydb" / f"filters_{config.data.table}.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[include-only-table]\n{config.data.source_table}\n", encoding="utf-8")
    return path


def _pgcopydb(config: BenchConfig, source: str) -> Approach:
    """pgcopydb copy table-data: COPY into the existing (emptied) table of the same name in the target."""
    binary, reason = _pgcopydb_binary()
    work = config.work_dir / "pgcopydb" / "table-data"
    argv = (
        binary or "pgcopydb", "copy", "table-data",
        "--source", config.postgres.url(PG_SOURCE_DB),
        "--target", config.postgres.url(PG_TARGET_DB),
        "--filters", str(_pgcopydb_filters(config)),
        "--dir", str(work),
    )  # fmt: skip
    return Approach(
        key="pgcopydb",
        label="(f) pgcopydb copy table-data (into the existing table)",
        source=source,
        target=config.data.source_table,  # pgcopydb writes to the source's schema.table in the target
        verify=Verify.CHECKSUM,
        prepare=Prepare.TRUNCATE,
        argv=argv,
        env=config.postgres.client_env(),
        skip_reason=reason,
        scratch=(str(work),),
    )


def _pgcopydb_clone(config: BenchConfig, source: str) -> Approach:
    """pgcopydb clone into a fresh database: the table without its key, in two key ranges, then the key."""
    binary, reason = _pgcopydb_binary()
    work = config.work_dir / "pgcopydb" / "clone"
    # pgcopydb splits a table larger than the threshold into ceil(size / threshold) key ranges: two here
    split = databases.table_bytes(config.postgres, config.data.source_table) // 2 + 1
    argv = (
        binary or "pgcopydb", "clone",
        "--source", config.postgres.url(PG_SOURCE_DB),
        "--target", config.postgres.url(PG_CLONE_DB),
        "--filters", str(_pgcopydb_filters(config)),
        "--dir", str(work),
        "--table-jobs", "2", "--index-jobs", "2",
        "--split-tables-larger-than", str(split),
        "--no-owner", "--no-acl",
    )  # fmt: skip
    return Approach(
        key="pgcopydb_clone",
        label="(f2) pgcopydb clone, split in two key ranges (key built after the load)",
        source=source,
        target=config.data.source_table,
        verify=Verify.CHECKSUM,
        prepare=Prepare.RECREATE_DATABASE,
        argv=argv,
        env=config.postgres.client_env(),
        skip_reason=reason,
        database=PG_CLONE_DB,
        scratch=(str(work),),
    )


def _pgloader(config: BenchConfig, source: str) -> Approach:
    """pgloader, MySQL -> PostgreSQL, ``WITH data only, truncate`` into the existing table."""
    binary = shutil.which("pgloader")
    schema = "mysrc_pgloader"
    folder = config.work_dir / "pgloader"
    folder.mkdir(parents=True, exist_ok=True)
    command = folder / f"{config.data.table}.load"
    command.write_text(
        "LOAD DATABASE\n"
        f"    FROM {config.mariadb.url(MARIADB_DB)}\n"
        f"    INTO {config.postgres.url(PG_TARGET_DB)}\n"
        "WITH data only, truncate\n"
        f"INCLUDING ONLY TABLE NAMES MATCHING '{config.data.table}'\n"
        f"ALTER SCHEMA '{MARIADB_DB}' RENAME TO '{schema}';\n",
        encoding="utf-8",
    )
    return Approach(
        key="pgloader",
        label="(g) pgloader WITH data only, truncate (into the existing table)",
        source=source,
        target=config.data.target(schema),
        verify=Verify.CHECKSUM,
        prepare=Prepare.TRUNCATE,
        argv=(binary or "pgloader", "--root-dir", str(folder / "root"), str(command)),
        skip_reason=None if binary else "pgloader not found (Debian/Ubuntu: apt-get install pgloader)",
        scratch=(str(folder / "root"),),
    )
