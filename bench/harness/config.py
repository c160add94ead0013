"""The benchmark's configuration: scale, runs, the two database servers, folders and database names."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from harness import datasets
from harness.datasets import Dataset

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
PG_SOURCE_DB = "etl_bench_src"
PG_TARGET_DB = "etl_bench_dst"
PG_CLONE_DB = "etl_bench_clone"  # pgcopydb clone's target: a fresh database for every run
MARIADB_DB = "etl_bench"


@dataclass(frozen=True)
class Server:
    """A database server reached as ``user[:password]@host:port`` (from a URL without a database)."""

    scheme: str
    host: str
    port: int
    user: str
    password: str = ""

    @classmethod
    def parse(cls, url: str, default_port: int) -> Server:
        parts = urlsplit(url)
        if not parts.hostname or not parts.username:
            raise ValueError(f"{url!r}: expected scheme://user@host:port")
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port or default_port,
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
        )

    def url(self, database: str, driver: str | None = None) -> str:
        """A SQLAlchemy-style URL for ``database``; ``driver`` adds ``+driver`` to the scheme."""
        scheme = f"{self.scheme}+{driver}" if driver else self.scheme
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{database}"

    def psql_args(self, database: str) -> list[str]:
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port), "-U", self.user,
                "-d", database]  # fmt: skip

    def mysql_args(self, database: str) -> list[str]:
        return ["mysql", "-h", self.host, "-P", str(self.port), "-u", self.user, database]

    def client_env(self) -> dict[str, str]:
        """Variables that carry the password to psql / mysql without putting it on the command line."""
        if not self.password:
            return {}
        return {"PGPASSWORD": self.password} if self.scheme.startswith("postgres") else {"MYSQL_PWD": self.password}


@dataclass(frozen=True)
class BenchConfig:
    """One invocation of the benchmark, as parsed from the command line."""

    sf: float
    runs: int
    competitor_runs: int  # runs of (c), (d), (e); (a) and (b) always get ``runs``
    sources: tuple[str, ...]
    approaches: tuple[str, ...]
    incremental_runs: int
    incremental_pct: float
    timeout: float
    pandas_method: str
    postgres: Server
    mariadb: Server
    command: str
    results_file: Path
    note: str = ""
    report_only: bool = False  # write the report from the saved figures, run nothing
    dataset: str = "lineitem"  # "lineitem" (scaled by sf) or "sales" (scaled by rows)
    rows: int = 0  # rows of the sales dataset

    @property
    def data(self) -> Dataset:
        return datasets.get(self.dataset)

    @property
    def scale_label(self) -> str:
        """The size of the data, as the report shows it."""
        return f"SF {self.sf:g}" if self.dataset == "lineitem" else f"{self.rows:,} rows"

    @property
    def results_name(self) -> str:
        """The saved figures' file name (one per dataset and size; lineitem keeps its older names)."""
        return f"sf{self.sf:g}.json" if self.dataset == "lineitem" else f"{self.dataset}_{self.rows}.json"

    @property
    def work_dir(self) -> Path:
        return BENCH_DIR / ".work"

    @property
    def data_dir(self) -> Path:
        return BENCH_DIR / "data"

    @property
    def logs_dir(self) -> Path:
        return self.work_dir / "logs"

    @property
    def projects_dir(self) -> Path:
        return BENCH_DIR / "projects"


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without ETL_* settings (so none of the user's leak in), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
    env.update(extra)
    return env
