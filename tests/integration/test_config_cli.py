"""Bad project.yml files through the command line: exit code 2, the file and the keys named, no
traceback; and time zones that resolve on systems without their own zone database (tzdata)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.projects import items_project


def project_file(home: Path) -> Path:
    return home / "customer_code" / "items_demo" / "project.yml"


def assert_one_line_error(stderr: str) -> None:
    assert stderr.startswith("script_runner.py: error: ") and stderr.count("\n") == 1
    assert "Traceback" not in stderr


def test_exit_2_when_project_yml_is_not_utf8(etl_home: Path) -> None:
    items_project(etl_home, extra="description: Données clients\n")
    path = project_file(etl_home)
    text = path.read_text(encoding="utf-8")
    path.write_bytes(text.encode("latin-1"))  # é is the single byte 0xE9, as Notepad's "ANSI" saves it
    offset = text.encode("latin-1").index(b"\xe9")
    line = text[: text.index("é")].count("\n") + 1
    result = run_cli("--project", "items_demo")
    assert result.code == 2
    assert_one_line_error(result.stderr)
    expected = f"{path}: line {line}, byte offset {offset} (0xe9): not UTF-8 text; save the file with the UTF-8"
    assert expected in result.stderr
    assert result.stdout == ""


def test_the_byte_offset_counts_a_byte_order_mark(etl_home: Path) -> None:
    items_project(etl_home)
    path = project_file(etl_home)
    path.write_bytes(b"\xef\xbb\xbf" + "# Données\n".encode("latin-1") + path.read_bytes())
    result = run_cli("--project", "items_demo")
    assert result.code == 2
    assert_one_line_error(result.stderr)
    assert f"{path}: line 1, byte offset 9 (0xe9): not UTF-8 text" in result.stderr


def test_a_utf8_byte_order_mark_is_accepted(etl_home: Path) -> None:
    items_project(etl_home, extra="description: Données clients\n")
    path = project_file(etl_home)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = run_cli("--list")
    assert result.code == 0 and "items_demo  Données clients" in result.stdout


def test_exit_2_lists_every_error_of_the_file_at_once_in_file_order(etl_home: Path) -> None:
    items_project(etl_home, strategy="upsert", extra="chunk_size: 0\nschedule: every morning\n")
    result = run_cli("--project", "items_demo", "--dry-run")
    assert result.code == 2
    lines = result.stderr.splitlines()
    assert lines == [
        f"script_runner.py: error: {project_file(etl_home)}: 3 errors:",
        "  tables[0] (items).strategy: expected one of append, merge, replace, delete_insert, got 'upsert'",
        "  chunk_size: expected a whole number >= 1, got 0",
        "  schedule: expected a cron expression such as \"0 6 * * *\", got 'every morning'",
    ]
    assert not (etl_home / "metadata" / "warehouse.db").exists()


def test_exit_2_on_an_unknown_time_zone_says_what_was_expected(etl_home: Path) -> None:
    items_project(etl_home, extra="incremental: {timezone: Europe/Pariss}\n")
    result = run_cli("--project", "items_demo", "--dry-run")
    assert result.code == 2
    assert_one_line_error(result.stderr)
    assert (
        f"{project_file(etl_home)}: incremental.timezone: 'Europe/Pariss' is not a time zone name "
        "(expected UTC or an IANA name such as Europe/Paris)"
    ) in result.stderr


# Python's zoneinfo reads the system's database (TZPATH), then the tzdata package. Windows and slim
# Docker images have no system database: emptying TZPATH in a child process stands for them.
NO_SYSTEM_ZONES = """
import sys, zoneinfo
sys.path.insert(0, sys.argv[1])
zoneinfo.reset_tzpath(to=[])
if sys.argv[2] == "without-tzdata":
    sys.modules["tzdata"] = None  # as if requirements.txt did not install it
"""


def run_without_system_zones(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_SYSTEM_ZONES + code, str(REPO), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        timeout=120,
    )


ZONE_PROBE = """
from datetime import datetime
from utilities.dates import zone
offset = datetime(2026, 7, 1, 12, tzinfo=zone("Europe/Paris")).utcoffset()
print(zoneinfo.TZPATH, offset)
"""


def test_time_zones_resolve_from_tzdata_without_a_system_database() -> None:
    result = run_without_system_zones(ZONE_PROBE, "with-tzdata")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "() 2:00:00"


def test_without_tzdata_and_a_system_database_the_error_says_to_install_tzdata() -> None:
    result = run_without_system_zones(ZONE_PROBE, "without-tzdata")
    assert result.returncode != 0
    assert "'Europe/Paris' cannot be looked up: this Python has no time zone database; install the tzdata" in (
        result.stderr
    )


CLI_PROBE = """
import script_runner
sys.exit(script_runner.main(["--project", "items_demo", "--dry-run"]))
"""


@pytest.mark.parametrize(("tzdata", "code"), [("with-tzdata", 0), ("without-tzdata", 2)])
def test_a_project_in_europe_paris_runs_wherever_tzdata_is_installed(etl_home: Path, tzdata: str, code: int) -> None:
    items_project(etl_home, extra="incremental: {timezone: Europe/Paris}\n")
    result = run_without_system_zones(CLI_PROBE, tzdata)
    assert result.returncode == code, result.stderr
    if code == 2:
        assert_one_line_error(result.stderr)
        assert "incremental.timezone: 'Europe/Paris' cannot be looked up" in result.stderr
        assert "install the tzdata package (pip install -r requirements.txt)" in result.stderr


def test_requirements_pin_the_installed_config_packages() -> None:
    from importlib.metadata import version

    pins = dict(
        line.split("==", 1)
        for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    for package in ("pydantic", "croniter", "tzdata"):
        assert pins.get(package) == version(package), f"requirements.txt: pin {package}=={version(package)}"
