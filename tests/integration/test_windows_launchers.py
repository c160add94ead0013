"""The Windows launchers (``sales_demo.bat`` -> ``_launch.bat``) under Wine's cmd.exe: positional
values become script_runner.py arguments, and script_runner.py's exit code (0-4) comes out of the
launcher, as Task Scheduler reads it.

``.venv\\Scripts\\python.exe`` is a small Windows program built here with MinGW that prints its
arguments and exits with the code in STUB_EXIT, so the test checks the batch files themselves.
Creating the venv with a Windows Python is not covered (no Windows Python here). .ci/run installs
Wine and MinGW from Debian's packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
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
    for name in ("_launch.bat", "sales_demo.bat", "backfill.bat", "chain.bat"):
        shutil.copy(REPO / "script_runner" / name, root / "script_runner" / name)
    (root / "script_runner.py").touch()
    scripts = root / ".venv" / "Scripts"
    scripts.mkdir(parents=True)
    (root / "stub.c").write_text(STUB, encoding="utf-8")
    subprocess.run([MINGW, "-O2", "-o", str(scripts / "python.exe"), str(root / "stub.c")], check=True)
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
