"""The Windows launchers (``sales_demo.bat`` -> ``_launch.bat``, ``sales_demo_docker.bat`` ->
``_docker.bat``) under Wine's cmd.exe: positional values become script_runner.py arguments, and
script_runner.py's exit code (0-4) comes out of the launcher, as Task Scheduler reads it.

``.venv\\Scripts\\python.exe`` and ``bin\\docker.exe`` are small Windows programs built here with
MinGW that print their arguments and exit with the code in STUB_EXIT, so the test checks the batch
files themselves. Creating the venv with a Windows Python, and a real Docker Desktop, are not covered
(neither runs here). .ci/run installs Wine and MinGW from Debian's packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

STUB = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("<%s>\n", argv[i]);
    const char *code = getenv("STUB_EXIT");
    return code ? atoi(code) : 0;
}
"""
# docker.exe: "image inspect" exits with STUB_IMAGE_EXIT, "version" with STUB_ENGINE_EXIT; "run" prints
# its arguments, and the value of each variable it passes by name with --env, then exits with STUB_EXIT.
DOCKER_STUB = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int code(const char *name) { const char *v = getenv(name); return v ? atoi(v) : 0; }
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "image") == 0) return code("STUB_IMAGE_EXIT");
    if (argc > 1 && strcmp(argv[1], "version") == 0) return code("STUB_ENGINE_EXIT");
    for (int i = 1; i < argc; i++) {
        printf("<%s>\n", argv[i]);
        const char *value = getenv(argv[i]);
        if (i > 1 && strcmp(argv[i - 1], "--env") == 0) printf("=%s=%s\n", argv[i], value ? value : "");
    }
    return code("STUB_EXIT");
}
"""
MINGW = "x86_64-w64-mingw32-gcc"
pytestmark = pytest.mark.skipif(
    shutil.which("wine") is None or shutil.which(MINGW) is None,
    reason="needs Wine and MinGW (Debian: apt-get install wine64 gcc-mingw-w64-x86-64-win32; .ci/run does)",
)


def wine_env(root: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "WINEPREFIX": str(root / "wineprefix"), "WINEDEBUG": "-all", **extra}


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the launchers beside a stub .venv; yields script_runner\\sales_demo.bat."""
    root = tmp_path_factory.mktemp("win")
    (root / "script_runner").mkdir()
    for name in ("_launch.bat", "sales_demo.bat", "_docker.bat", "sales_demo_docker.bat", "backfill.bat", "chain.bat"):
        shutil.copy(REPO / "script_runner" / name, root / "script_runner" / name)
    (root / "script_runner.py").touch()
    scripts = root / ".venv" / "Scripts"
    scripts.mkdir(parents=True)
    (root / "stub.c").write_text(STUB, encoding="utf-8")
    subprocess.run([MINGW, "-O2", "-o", str(scripts / "python.exe"), str(root / "stub.c")], check=True)
    (root / "bin").mkdir()
    (root / "docker_stub.c").write_text(DOCKER_STUB, encoding="utf-8")
    subprocess.run([MINGW, "-O2", "-o", str(root / "bin" / "docker.exe"), str(root / "docker_stub.c")], check=True)
    for folder in ("customer_code", "warehouse", "aggregations"):
        (root / folder).mkdir()
    # create the Wine prefix once, then keep its server up (each cmd.exe would start its own)
    # (output to DEVNULL: the server and Wine's services outlive the call and would hold a pipe open)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "stdin": subprocess.DEVNULL}
    subprocess.run(["wine", "cmd", "/c", "ver"], env=wine_env(root), check=True, timeout=300, **quiet)
    subprocess.run(["wineserver", "-p"], env=wine_env(root), check=False, timeout=60, **quiet)
    try:
        yield root / "script_runner" / "sales_demo.bat"
    finally:
        subprocess.run(["wineserver", "-k"], env=wine_env(root), check=False)


def run_bat(bat: Path, *args: str, exit_code: int = 0) -> tuple[int, list[str]]:
    done = subprocess.run(
        ["wine", "cmd", "/c", "Z:" + str(bat).replace("/", "\\"), *args],
        env=wine_env(bat.parent.parent, STUB_EXIT=str(exit_code)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line.strip("\r") for line in done.stdout.splitlines() if line.startswith("<")]
    return done.returncode, [line[1:-1] for line in lines]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["--project", "sales_demo", "--load-type", "I"]),
        (["F"], ["--project", "sales_demo", "--load-type", "F"]),
        (
            ["I", "2026-01-01", "2026-01-31", "--dry-run"],
            [
                "--project",
                "sales_demo",
                "--load-type",
                "I",
                "--start-date",
                "2026-01-01",
                "--end-date",
                "2026-01-31",
                "--dry-run",
            ],
        ),  # fmt: skip
        (
            ["I", "2026-01-01T08:00:00"],
            ["--project", "sales_demo", "--load-type", "I", "--start-date", "2026-01-01T08:00:00"],
        ),
        (["--check"], ["--project", "sales_demo", "--load-type", "I", "--check"]),
        (["F", "--env", "prod"], ["--project", "sales_demo", "--load-type", "F", "--env", "prod"]),
    ],
)
def test_positional_values_become_script_runner_arguments(launcher: Path, args: list[str], expected: list[str]) -> None:
    code, argv = run_bat(launcher, *args)
    assert code == 0
    assert argv[0].endswith("\\script_runner.py")
    assert argv[1:] == expected


@pytest.mark.parametrize("exit_code", [0, 1, 2, 3, 4])
def test_the_exit_code_is_passed_on(launcher: Path, exit_code: int) -> None:
    code, argv = run_bat(launcher, "I", exit_code=exit_code)
    assert argv[1:] == ["--project", "sales_demo", "--load-type", "I"]
    assert code == exit_code


@dataclass
class DockerCall:
    code: int
    argv: list[str]  # docker's arguments ("run" first); empty when the launcher did not call docker run
    passed: dict[str, str]  # the variables passed by name with --env, as the container would see them
    stderr: str


def run_docker_bat(launcher: Path, *args: str, on_path: bool = True, **env: str) -> DockerCall:
    """``sales_demo_docker.bat ARGS`` with the stub docker.exe on PATH (or not), and ``env`` set."""
    root = launcher.parent.parent
    bat = root / "script_runner" / "sales_demo_docker.bat"
    extra = {"WINEPATH": "Z:" + str(root / "bin").replace("/", "\\")} if on_path else {}
    done = subprocess.run(
        ["wine", "cmd", "/c", "Z:" + str(bat).replace("/", "\\"), *args],
        env=wine_env(root, **extra, **env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line.strip("\r") for line in done.stdout.splitlines()]
    argv = [line[1:-1] for line in lines if line.startswith("<")]
    passed = dict(line[1:].split("=", 1) for line in lines if line.startswith("="))
    return DockerCall(done.returncode, argv, passed, done.stderr)


def win(path: Path) -> str:
    return "Z:" + str(path).replace("/", "\\")


def test_the_docker_launcher_mounts_the_folders_and_forwards_every_argument(launcher: Path) -> None:
    root = launcher.parent.parent
    call = run_docker_bat(
        launcher, "F", "2026-01-01", "2026-01-31", "--dry-run", "--tables", "orders", "--env", "prod", "--check"
    )
    assert call.code == 0, call.stderr
    image = call.argv.index("etl-runner:latest")
    assert call.argv[:3] == ["run", "--rm", "--network"] and call.argv[3] == "host"
    options = call.argv[:image]
    assert options[options.index(f"{win(root)}\\metadata:/app/metadata") - 1] == "-v"
    for folder in ("customer_code", "warehouse", "aggregations"):
        assert f"{win(root)}\\{folder}:/app/{folder}:ro" in options
    assert (root / "metadata").is_dir() and not list((root / "metadata").iterdir())  # the write probe is gone
    assert call.argv[image + 1 :] == [
        "--project", "sales_demo", "--load-type", "F", "--start-date", "2026-01-01", "--end-date", "2026-01-31",
        "--dry-run", "--tables", "orders", "--env", "prod", "--check",
    ]  # fmt: skip


def test_the_docker_launcher_mounts_the_env_files_and_passes_the_etl_variables(launcher: Path) -> None:
    root = launcher.parent.parent
    (root / ".env").write_text("ETL_ENV=dev\n", encoding="utf-8")
    (root / ".env.prod").write_text("ETL_ENV=prod\n", encoding="utf-8")
    try:
        call = run_docker_bat(
            launcher,
            "I",
            ETL_CONN_WAREHOUSE="postgresql://etl@db.example:5432/dw",
            ETL_LOG_LEVEL="DEBUG",
            ETL_HOME="C:\\elsewhere",
            ETL_DOCKER_IMAGE="etl-runner:test",
        )
    finally:
        (root / ".env").unlink()
        (root / ".env.prod").unlink()
    assert call.code == 0 and call.stderr == "", call.stderr
    assert f"{win(root)}\\.env:/app/.env:ro" in call.argv
    assert f"{win(root)}\\.env.prod:/app/.env.prod:ro" in call.argv
    assert call.passed == {"ETL_CONN_WAREHOUSE": "postgresql://etl@db.example:5432/dw", "ETL_LOG_LEVEL": "DEBUG"}
    assert "postgresql://etl@db.example:5432/dw" not in call.argv  # by name only
    assert call.argv[call.argv.index("etl-runner:test") + 1 :] == ["--project", "sales_demo", "--load-type", "I"]


@pytest.mark.parametrize("exit_code", [0, 1, 2, 3, 4])
def test_the_docker_launcher_passes_the_exit_code_on(launcher: Path, exit_code: int) -> None:
    call = run_docker_bat(launcher, "I", STUB_EXIT=str(exit_code))
    assert call.argv[0] == "run"
    assert call.code == exit_code


@pytest.mark.parametrize(
    ("env", "on_path", "message"),
    [
        ({}, False, "script_runner: docker was not found on PATH; install Docker Desktop"),
        ({"STUB_IMAGE_EXIT": "1", "STUB_ENGINE_EXIT": "1"}, True, "script_runner: the Docker engine does not answer"),
        ({"STUB_IMAGE_EXIT": "1"}, True, "script_runner: Docker image etl-runner:latest not found; build it in"),
    ],
)
def test_the_docker_launcher_says_what_is_missing_and_exits_2(
    launcher: Path, env: dict[str, str], on_path: bool, message: str
) -> None:
    call = run_docker_bat(launcher, "I", on_path=on_path, **env)
    assert call.code == 2
    assert call.argv == []  # no "docker run", so no pull from a registry
    assert message in call.stderr and call.stderr.strip().count("\n") == 0, call.stderr


def test_backfill_bat_passes_the_range_and_window_length(launcher: Path) -> None:
    args = ("sales_demo", "2024-01-01", "2024-12-31", "7", "--redo-failed")
    code, argv = run_bat(launcher.parent / "backfill.bat", *args, exit_code=1)
    assert code == 1
    assert argv[1:] == [
        "--project", "sales_demo", "--load-type", "I", "--backfill", "--start-date", "2024-01-01",
        "--end-date", "2024-12-31", "--load-days", "7", "--redo-failed",
    ]  # fmt: skip
    code, argv = run_bat(launcher.parent / "backfill.bat", "sales_demo", "2024-01-01", "2024-01-31")
    assert code == 0 and argv[-2:] == ["--load-days", "1"]
    code, argv = run_bat(launcher.parent / "backfill.bat", "sales_demo")
    assert code == 2 and argv == []


@pytest.mark.parametrize("exit_code", [0, 3, 5])
def test_chain_bat_runs_in_order_and_stops_at_the_first_failure(launcher: Path, exit_code: int) -> None:
    code, argv = run_bat(launcher.parent / "chain.bat", "first", "second", exit_code=exit_code)
    assert code == exit_code
    projects = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--project"]
    assert projects == (["first", "second"] if exit_code == 0 else ["first"])
