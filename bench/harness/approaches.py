"""The approaches compared: how each one is launched as a child process, where it loads, how it is checked."""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from harness import lineitem
from harness.config import BENCH_DIR, MARIADB_DB, PG_SOURCE_DB, PG_TARGET_DB, REPO_DIR, BenchConfig

KEYS = ("pipe", "pipe_binary", "ours", "pandas", "dlt_default", "dlt_pyarrow", "sling")
RAW = ("pipe", "pipe_binary")  # the raw pipes: every timed run, like ours
SOURCES = ("pg", "mysql")


class Verify(StrEnum):
    CHECKSUM = "checksum"  # the target has lineitem's DDL: row count and checksum equal the source's
    COUNT = "count"  # the tool creates its own table and types: row count equals the source's


class Prepare(StrEnum):
    TRUNCATE = "truncate"  # the target table is emptied before the run
    DROP_SCHEMA = "drop_schema"  # the tool's schema is dropped (and its local state removed)


@dataclass(frozen=True)
class Approach:
    """One way of moving lineitem from a source into the PostgreSQL target."""

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
    }
    keys = [key for key in KEYS if key in config.approaches and (key != "pipe_binary" or source == "pg")]
    return [makers[key](config, source) for key in keys]


def ours_command(config: BenchConfig, source: str, load_type: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """``script_runner.py`` for the bench project of ``source``, as a user runs it, and its environment."""
    project = "bench_pg" if source == "pg" else "bench_mysql"
    src_url = config.postgres.url(PG_SOURCE_DB) if source == "pg" else config.mariadb.url(MARIADB_DB)
    argv = (sys.executable, str(REPO_DIR / "script_runner.py"), "--project", project, "--load-type", load_type)
    env = {
        "ETL_HOME": str(config.projects_dir),
        "ETL_CONN_WAREHOUSE": config.postgres.url(PG_TARGET_DB),
        "ETL_CONN_SRC": src_url,
    }
    return argv, env


def _prefix(source: str) -> str:
    return "pgsrc" if source == "pg" else "mysrc"


def _pipe(config: BenchConfig, source: str) -> Approach:
    target = f"{_prefix(source)}_raw.lineitem"
    sink = shlex.join(
        [*config.postgres.psql_args(PG_TARGET_DB), "-c", f"\\copy {target} ({lineitem.COLUMN_LIST}) from stdin"]
    )
    if source == "pg":
        select = f"\\copy (select {lineitem.COLUMN_LIST} from public.lineitem) to stdout"
        reader = shlex.join([*config.postgres.psql_args(PG_SOURCE_DB), "-c", select])
        label = "(a) psql \\copy pipe (the reference)"
    else:
        select = f"select {lineitem.COLUMN_LIST} from lineitem"
        reader = shlex.join(
            [*config.mariadb.mysql_args(MARIADB_DB), "--batch", "--quick", "--skip-column-names", "-e", select]
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
    target = "pgsrc_rawbin.lineitem"
    select = f"\\copy (select {lineitem.COLUMN_LIST} from public.lineitem) to stdout with (format binary)"
    reader = shlex.join([*config.postgres.psql_args(PG_SOURCE_DB), "-c", select])
    sink = shlex.join(
        [
            *config.postgres.psql_args(PG_TARGET_DB),
            "-c",
            f"\\copy {target} ({lineitem.COLUMN_LIST}) from stdin with (format binary)",
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
        target=f"{_prefix(source)}_ours.lineitem",
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
    )  # fmt: skip
    shown = 'method="multi", chunksize=2000' if config.pandas_method == "multi" else "chunksize=10000"
    return Approach(
        key="pandas",
        label=f"(c) pandas read_sql(chunksize=100000) + to_sql({shown})",
        source=source,
        target=f"{schema}.lineitem",
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
    ]  # fmt: skip
    if source == "pg":
        argv += ["--source-schema", "public"]
    return Approach(
        key=f"dlt_{flavour}",
        label=f"(d) dlt sql_database, {flavour} backend" + (" (sqlalchemy)" if flavour == "default" else ""),
        source=source,
        target=f"{dataset}.lineitem",
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
    stream = "public.lineitem" if source == "pg" else f"{MARIADB_DB}.lineitem"
    argv = (
        binary or "sling", "run",
        "--src-conn", "BENCH_SRC", "--src-stream", stream,
        "--tgt-conn", "BENCH_DST", "--tgt-object", f"{schema}.lineitem",
        "--mode", "full-refresh",
    )  # fmt: skip
    src_url = _source_url(config, source, None).replace("mysql+pymysql://", "mysql://")
    return Approach(
        key="sling",
        label="(e) Sling CLI (PyPI-packaged binary)",
        source=source,
        target=f"{schema}.lineitem",
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
