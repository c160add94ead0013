"""The ``_docker.sh`` launchers against a real Docker engine: the image is built from docker/Dockerfile,
and sales_demo_docker.sh runs in a copy of the ETL home against SQLite and the real PostgreSQL
(127.0.0.1, through --network host). Exit codes 0-3, the audit rows, and the owner of every file the
container wrote in metadata/ are checked.

Behind the ``docker`` marker: the default run leaves these out, .ci/run runs them with ``-m docker``
after starting an engine (.ci/docker_engine.sh). Without an engine they skip, or fail under CI=1.
Run as root (as in CI), the launcher runs as uid 4242, so "owned by the caller" means something.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from script_factory.lock import ProjectLock
from tests.conftest import REPO, query

pytestmark = pytest.mark.docker

IMAGE = "etl-runner:test"
BASE_IMAGE = "python:3.11-slim"
CALLER = 4242 if os.geteuid() == 0 else os.geteuid()
CALLER_GROUP = 4242 if os.geteuid() == 0 else os.getegid()


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI=1: .ci/run starts an engine with .ci/docker_engine.sh)")
    pytest.skip(message)


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def image() -> str:
    """The runner's image, built now from this checkout (layers cached by the engine)."""
    if shutil.which("docker") is None:
        _unavailable("the docker command is not installed")
    if _docker("version", "--format", "{{.Server.Version}}").returncode != 0:
        _unavailable(f"no Docker engine answers at {os.environ.get('DOCKER_HOST', 'the default socket')}")
    if _docker("image", "inspect", BASE_IMAGE).returncode != 0:
        _unavailable(f"the engine has no {BASE_IMAGE} base image (.ci/docker_engine.sh base makes one)")
    started = time.monotonic()
    build = _docker(
        "build", "--network", "host", "-f", "docker/Dockerfile", "--build-arg", f"GIT_COMMIT={_commit().strip()}",
        "-t", IMAGE, str(REPO), timeout=900,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    print(f"docker build of {IMAGE}: {time.monotonic() - started:.1f} s")
    return IMAGE


@dataclass
class Home:
    """A copy of the ETL home owned by the caller, with sales_demo and its Docker launcher."""

    root: Path

    @property
    def metadata(self) -> Path:
        return self.root / "metadata"

    def run(self, *args: str, launcher: str = "sales_demo_docker.sh", **env: str) -> subprocess.CompletedProcess[str]:
        """The launcher with ``args``, as the caller, with ``env`` added to a bare environment."""
        base = {"PATH": os.environ["PATH"], "HOME": str(self.root), "ETL_DOCKER_IMAGE": IMAGE}
        if "DOCKER_HOST" in os.environ:
            base["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
        as_caller = {}
        if os.geteuid() == 0:
            as_caller = {"user": CALLER, "group": CALLER_GROUP, "extra_groups": [_socket_group()]}
        return subprocess.run(
            [str(self.root / "script_runner" / launcher), *args],
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            **as_caller,
        )

    def write(self, relative: str, text: str) -> None:
        path = self.root / relative
        path.write_text(text, encoding="utf-8")
        os.chown(path, CALLER, CALLER_GROUP)

    def runs(self) -> list[tuple]:
        """etl_runs of the SQLite warehouse, read-only (a reader must not leave root-owned files)."""
        path = self.metadata / "warehouse.db"
        if not path.exists():
            return []
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute(
                "SELECT run_id, status, load_type, environment, script_version, number_of_records, error_message "
                "FROM etl_runs ORDER BY run_id"
            ).fetchall()


def _socket_group() -> int:
    """The group of the engine's socket: the caller needs it, as a member of the docker group would."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return os.stat(host.removeprefix("unix://")).st_gid


@pytest.fixture
def home(image: str) -> Iterator[Home]:
    root = Path(tempfile.mkdtemp(prefix="etl-docker-test-"))  # not under pytest's 0700 tmp: the caller reads it
    try:
        (root / "script_runner").mkdir()
        for name in ("_docker.sh", "_args.sh", "sales_demo_docker.sh"):
            shutil.copy2(REPO / "script_runner" / name, root / "script_runner" / name)
        for folder in ("customer_code", "warehouse", "aggregations"):
            shutil.copytree(REPO / folder / "sales_demo", root / folder / "sales_demo")
        for path in [root, *root.rglob("*")]:
            os.chown(path, CALLER, CALLER_GROUP)
        os.chmod(root, 0o755)
        yield Home(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def assert_owned_by_the_caller(metadata: Path) -> None:
    paths = [metadata, *metadata.rglob("*")]
    assert len(paths) > 5
    wrong = [(str(p), p.stat().st_uid, p.stat().st_gid) for p in paths if p.stat().st_uid != CALLER]
    wrong += [(str(p), p.stat().st_uid, p.stat().st_gid) for p in paths if p.stat().st_gid != CALLER_GROUP]
    assert not wrong


def test_sqlite_full_then_incremental_with_the_env_file_read_by_the_runner(home: Home) -> None:
    # Quotes and a comment, as python-dotenv reads them (docker's --env-file would keep the quotes).
    home.write(".env", 'ETL_ENV="docker ci"   # the audit row names it\n')
    full = home.run("F")
    assert full.returncode == 0, full.stderr
    incremental = home.run()
    assert incremental.returncode == 0, incremental.stderr
    assert_owned_by_the_caller(home.metadata)
    runs = home.runs()
    version = f"0.1.0+{_commit()[:7]}"
    assert [r[:5] for r in runs] == [
        (1, "success", "F", "docker ci", version),
        (2, "success", "I", "docker ci", version),
    ]
    assert runs[0][5] > 3000 and 0 < runs[1][5] < runs[0][5]
    assert len(list((home.metadata / "output" / "sales_demo").glob("daily_sales_*.csv"))) == 2


def test_postgresql_from_the_callers_variable_and_from_env_name(home: Home, pg_url: str) -> None:
    warehouse = pg_url.replace("postgresql://", "postgresql+psycopg://")
    home.write(".env", "ETL_ENV=from_dot_env\n")
    full = home.run("F", ETL_CONN_WAREHOUSE=pg_url)  # the shell's variable reaches the container
    assert full.returncode == 0, full.stderr
    home.write(".env.pg", f"ETL_CONN_WAREHOUSE={pg_url}\nETL_ENV=pg\n")
    incremental = home.run("I", "--env", "pg")
    assert incremental.returncode == 0, incremental.stderr
    runs = query(warehouse, "SELECT run_id, status, load_type, environment FROM etl_runs ORDER BY run_id")
    assert runs == [(1, "success", "F", "from_dot_env"), (2, "success", "I", "pg")]
    assert query(warehouse, "SELECT count(*) FROM fact_order_lines")[0][0] > 3000
    assert home.runs() == []  # nothing went into the SQLite file
    assert_owned_by_the_caller(home.metadata)


def test_exit_1_when_a_task_fails_after_a_sql_change_without_a_rebuild(home: Home) -> None:
    assert home.run("F").returncode == 0
    sql = "customer_code/sales_demo/sql/order_lines.sql"
    home.write(sql, (home.root / sql).read_text(encoding="utf-8").replace("FROM order_lines", "FROM no_such_lines"))
    failed = home.run()
    assert failed.returncode == 1, failed.stderr
    runs = home.runs()
    assert [r[1:3] for r in runs] == [("success", "F"), ("failed", "I")]
    assert "no_such_lines" in runs[1][6]
    assert_owned_by_the_caller(home.metadata)


def test_exit_3_when_a_run_on_the_host_holds_the_lock(home: Home) -> None:
    assert home.run("F").returncode == 0
    with ProjectLock(home.metadata / "locks", "sales_demo"):
        locked = home.run()
    assert locked.returncode == 3, locked.stderr
    assert "project sales_demo is already running by pid" in locked.stderr
    assert [r[1] for r in home.runs()] == ["success"]


def test_exit_2_with_one_line_when_something_is_missing(home: Home) -> None:
    tools = home.root / "tools"  # what the launcher needs before it looks for docker, and no docker
    tools.mkdir()
    for tool in ("sh", "dirname", "id", "mkdir", "env", "sed"):
        (tools / tool).symlink_to(shutil.which(tool) or tool)
    no_docker = home.run(PATH=str(tools))
    no_engine = home.run(DOCKER_HOST="unix:///nonexistent/docker.sock")
    no_image = home.run(ETL_DOCKER_IMAGE="etl-runner:no-such-tag")
    assert (no_docker.returncode, no_docker.stderr) == (
        2,
        "script_runner: docker was not found on PATH; install Docker Engine or Docker Desktop, "
        "or run script_runner/sales_demo.sh\n",
    )
    assert no_engine.returncode == 2 and no_engine.stderr.startswith("script_runner: the Docker engine does not answer")
    assert no_image.returncode == 2 and no_image.stderr == (
        f"script_runner: Docker image etl-runner:no-such-tag not found; build it in {home.root}: "
        "docker build -f docker/Dockerfile -t etl-runner:no-such-tag .\n"
    )
    assert _docker("image", "inspect", "etl-runner:no-such-tag").returncode != 0  # nothing was pulled
    bad_project = home.run("no_such_project", "F", launcher="_docker.sh")
    assert bad_project.returncode == 2 and bad_project.stderr.count("\n") == 1, bad_project.stderr
    assert home.runs() == []


def test_exit_2_when_metadata_is_not_writable_by_the_caller(home: Home) -> None:
    home.metadata.mkdir()
    os.chown(home.metadata, 0, 0)
    os.chmod(home.metadata, 0o555)
    denied = home.run("F")
    assert denied.returncode == 2
    assert denied.stderr == (
        f"script_runner: {home.metadata} is not writable by uid {CALLER}, who runs the container; "
        f"fix it with: sudo chown -R {CALLER}:{CALLER_GROUP} {home.metadata}\n"
    )
    assert list(home.metadata.iterdir()) == []


def test_the_image_has_time_zones_and_runs_as_etl_by_default(image: str) -> None:
    done = _docker(
        "run", "--rm", "--entrypoint", "sh", image, "-c",
        "id -un; TZ=Europe/Berlin date -d '2026-07-01 12:00 UTC' +%H:%M; test ! -e /app/.env && echo no-env",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["etl", "14:00", "no-env"]


def test_the_connectors_image_imports_pyodbc_and_the_other_drivers(image: str) -> None:
    """CONNECTORS=1 installs unixODBC (libodbc.so.2), without which pyodbc cannot be imported."""
    started = time.monotonic()
    build = _docker(
        "build", "--network", "host", "-f", "docker/Dockerfile", "--build-arg", "CONNECTORS=1",
        "-t", f"{IMAGE}-connectors", str(REPO), timeout=900,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    print(f"docker build of {IMAGE}-connectors: {time.monotonic() - started:.1f} s")
    modules = "pyodbc, oracledb, boto3, google.cloud.bigquery, snowflake.connector, simple_salesforce"
    command = f"import {modules}; print('ok')"
    done = _docker("run", "--rm", "--entrypoint", "python", f"{IMAGE}-connectors", "-c", command)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
