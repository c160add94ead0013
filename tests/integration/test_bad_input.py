"""Bad inputs answered with one clear line and the documented exit code, with nothing half-written
(issue 8, section 7): a ``--project`` that is a path, a full or unwritable log folder, a file where a
run folder belongs, and lines of ``.env`` files that are not ``NAME=value``."""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from script_factory.config import load_project
from script_factory.factory import load_project_config
from script_factory.settings import load_settings, read_env_file
from tests.conftest import REPO, CliResult, run_cli
from utilities import logs
from utilities.errors import ConfigError

ERROR = "script_runner.py: error: "
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")
SUMMARY = "sales_demo: SUCCESS  (run 1, load type I, exit code 0)"


def run_process(*args: str) -> CliResult:
    """``python script_runner.py ARGS`` in a child process (ETL_HOME and the rest from this one)."""
    done = subprocess.run(
        [sys.executable, str(REPO / "script_runner.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def assert_one_error_line(result: CliResult, expected: str) -> None:
    """Exit 2, and stderr is exactly ``script_runner.py: error: <expected...>`` on one line."""
    assert result.code == 2, result.stderr
    assert result.stderr.startswith(ERROR + expected), result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def metadata_files(home: Path) -> list[str]:
    """Everything below ``home/metadata`` (relative paths), or ['<file>'] if metadata is a file; the cache of
    validated configs (``metadata/cache/``, written when a valid project.yml is read) is no run artifact."""
    metadata = home / "metadata"
    if not metadata.is_dir():
        return ["<file>"] if metadata.exists() else []
    found = (str(p.relative_to(metadata)) for p in metadata.rglob("*"))
    return sorted(name for name in found if name != "cache" and not name.startswith("cache/"))


def audit_runs(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "metadata" / "warehouse.db") as conn:
        return conn.execute("SELECT status, number_of_records, log_file FROM etl_runs ORDER BY run_id").fetchall()


# --- 1. --project is a plain folder name under customer_code/ ---------------------------------------


@pytest.fixture
def planted(demo_home: Path, tmp_path: Path) -> Path:
    """A real, valid project outside customer_code/: the demo, renamed p, at <tmp>/elsewhere/p."""
    folder = tmp_path / "elsewhere" / "p"
    shutil.copytree(demo_home / "customer_code" / "sales_demo", folder)
    yml = folder / "project.yml"
    text = yml.read_text(encoding="utf-8")
    assert "project: sales_demo " in text
    yml.write_text(text.replace("project: sales_demo ", "project: p "), encoding="utf-8")
    assert load_project(folder).name == "p"  # it would run, were it reachable
    return folder


def test_a_project_path_leaving_customer_code_is_refused_and_not_run(demo_home: Path, planted: Path) -> None:
    before = sorted(str(p.relative_to(planted)) for p in planted.rglob("*"))
    for name in ("../../elsewhere/p", str(planted)):
        result = run_cli("--project", name)
        assert_one_error_line(result, f"--project {name!r} is not a project name: give the folder name under")
        assert "see script_runner.py --list" in result.stderr
    assert metadata_files(demo_home) == []  # no warehouse.db, no log, no lock, no output
    assert sorted(str(p.relative_to(planted)) for p in planted.rglob("*")) == before


@pytest.mark.parametrize(
    "name",
    [
        "../customer_code/sales_demo",
        "customer_code/sales_demo",
        "sales_demo/",
        "a/b",
        ".",
        "..",
        "..\\sales_demo",
        "sales\\demo",
        "/etc",
        "Sales_Demo",
        "sales demo",
        "sales_demo\n",
    ],
)
def test_every_other_shape_of_project_name_is_exit_2_before_anything_is_read(demo_home: Path, name: str) -> None:
    (demo_home / ".env").write_text("this line would be an error if .env were read\n", encoding="utf-8")
    result = run_cli("--project", name)
    assert_one_error_line(result, f"--project {name!r} is not a project name")
    assert metadata_files(demo_home) == []


def test_the_factory_refuses_a_project_folder_outside_customer_code_too(demo_home: Path, planted: Path) -> None:
    settings = load_settings()
    for name in ("../../elsewhere/p", str(planted), "..", ".", "", "sales_demo/.."):
        with pytest.raises(ConfigError, match="is not a folder name under .*customer_code"):
            load_project_config(name, settings)
    # A project folder that is a symlink inside customer_code/ is the operator's choice and still loads.
    (demo_home / "customer_code" / "p").symlink_to(planted, target_is_directory=True)
    assert load_project_config("p", settings).name == "p"


# --- 2. a log file that cannot be written never changes the run's outcome ---------------------------


@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, str], None]]:
    """``mount(folder, options)``: a small tmpfs over ``folder`` (skips the test where mounting is not
    allowed: not root, or a container without CAP_SYS_ADMIN); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(folder: Path, options: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True, capture_output=True
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot mount a tmpfs here: {exc}")
        mounted.append(folder)

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path, *, inodes: bool) -> None:
    """Use up the space (one big file) or the inodes (many empty files) of the file system of ``folder``."""
    try:
        if inodes:
            for n in range(100_000):
                (folder / f"filler_{n}").touch()
        else:
            with open(folder / "filler", "wb") as big:
                while True:
                    big.write(b"\0" * 65536)
                    big.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    else:
        raise AssertionError("the tmpfs did not fill up")


def assert_success_with_one_warning(result: CliResult, warning: str) -> None:
    assert result.code == 0, result.stderr
    assert SUMMARY in result.stdout
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr
    assert [line for line in result.stderr.splitlines() if not LOG_LINE.match(line)] == []  # log lines only
    said = [line for line in result.stderr.splitlines() if "utilities.logs:" in line]
    assert len(said) == 1, said
    assert re.search(warning + r"; the run goes on and logs to the console only$", said[0]), said[0]
    assert " WARNING " in said[0]


LOG_FILE = r"\S+/metadata/logs/sales_demo/sales_demo_\d{8}_\d{6}\.log"


def test_a_full_disk_under_the_logs_folder_is_said_once_and_the_run_succeeds(
    demo_home: Path, tmpfs: Callable[[Path, str], None]
) -> None:
    logs_dir = demo_home.resolve() / "metadata" / "logs"
    tmpfs(logs_dir, "size=64k")
    (logs_dir / "sales_demo").mkdir()
    fill(logs_dir, inodes=False)
    result = run_process("--project", "sales_demo")
    assert_success_with_one_warning(result, rf"could not write the log file {LOG_FILE} \(No space left on device\)")
    [(status, rows, log_file)] = audit_runs(demo_home)
    assert (status, rows) == ("success", 3257)
    assert log_file is not None and Path(log_file).parent == logs_dir / "sales_demo"  # the file that fell short


@pytest.mark.parametrize("folder_exists", [True, False], ids=["log-file-cannot-open", "log-folder-cannot-be-made"])
def test_a_log_file_that_cannot_be_created_is_said_once_and_the_run_succeeds(
    demo_home: Path, tmpfs: Callable[[Path, str], None], folder_exists: bool
) -> None:
    logs_dir = demo_home / "metadata" / "logs"
    tmpfs(logs_dir, "size=1m,nr_inodes=64")
    if folder_exists:
        (logs_dir / "sales_demo").mkdir()
    fill(logs_dir, inodes=True)  # no inode left: creating the file (or its folder) fails with ENOSPC
    result = run_process("--project", "sales_demo")
    if folder_exists:
        warning = rf"could not open the log file {LOG_FILE} \(No space left on device\)"
    else:
        warning = r"could not create a log file in \S+/metadata/logs/sales_demo \(No space left on device\)"
    assert_success_with_one_warning(result, warning)
    assert "  log       -" in result.stdout
    assert audit_runs(demo_home) == [("success", 3257, None)]


def test_writing_the_log_through_dev_full_is_said_once_and_the_run_succeeds(
    demo_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same without mounting anything: every write to /dev/full fails with ENOSPC."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    link = demo_home / "metadata" / "logs" / "sales_demo" / "sales_demo_20260101_000000.log"
    link.parent.mkdir(parents=True)
    link.symlink_to("/dev/full")
    monkeypatch.setattr(logs, "new_log_path", lambda *_: link)
    result = run_cli("--project", "sales_demo")
    assert_success_with_one_warning(
        result, rf"could not write the log file {re.escape(str(link))} \(No space left on device\)"
    )
    assert audit_runs(demo_home) == [("success", 3257, str(link))]


def test_a_log_file_that_cannot_open_is_said_once_whatever_the_log_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        opened = logs.install(tmp_path / "no_such_folder" / "run.log", str, logging.ERROR)
        logging.getLogger("test.console").error("still on the console")
    finally:
        logs.remove()
    assert opened is None
    console = capsys.readouterr().err
    lines = console.splitlines()
    assert len(lines) == 2 and "Traceback" not in console
    assert "WARNING utilities.logs: could not open the log file " in lines[0]
    assert "run.log (No such file or directory)" in lines[0]
    assert lines[1].endswith("ERROR   test.console: still on the console")


# --- 3. a file where a folder of the run belongs --------------------------------------------------


@pytest.mark.parametrize(
    ("where", "left"),
    [
        ("metadata", ["<file>"]),
        ("metadata/logs", ["logs"]),
        ("metadata/output", ["output"]),
        ("metadata/locks", ["locks"]),
        ("metadata/logs/sales_demo", ["logs", "logs/sales_demo"]),
        ("metadata/output/sales_demo", ["output", "output/sales_demo"]),
    ],
)
def test_a_file_where_a_run_folder_belongs_is_exit_2_and_nothing_connects(
    demo_home: Path, where: str, left: list[str]
) -> None:
    path = demo_home / where
    if path.is_dir():
        path.rmdir()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a folder\n", encoding="utf-8")
    result = run_cli("--project", "sales_demo")
    assert_one_error_line(
        result,
        f"{path.resolve()} is a file where the run needs a folder (for its logs, outputs and locks); "
        "remove or rename that file, then run again",
    )
    # Only the planted file (and its folders): no warehouse.db (so no audit row), no demo source, no lock, no log.
    assert metadata_files(demo_home) == left


def test_a_broken_link_where_a_run_folder_belongs_is_exit_2(demo_home: Path) -> None:
    link = demo_home / "metadata" / "logs"
    link.symlink_to(demo_home / "gone")
    result = run_cli("--project", "sales_demo")
    assert_one_error_line(result, f"{link} is a broken link where the run needs a folder")
    assert metadata_files(demo_home) == ["logs"]


# --- 4. .env and .env.NAME lines that are not NAME=value --------------------------------------------


@pytest.mark.parametrize(
    ("file", "text", "args", "expected"),
    [
        (".env", "GOOD=1\nthis is not a setting\n", [], "line 2 cannot be read: fix or remove it"),
        (".env", "A=1\n\n\n# a comment\n\ngarbage here\n", [], "line 6 cannot be read"),
        (
            ".env",
            'A=1\nETL_CONN_ERP_PASSWORD="s3cr3t-Pa55w0rd\n',
            [],
            "line 2 (ETL_CONN_ERP_PASSWORD) cannot be read",
        ),
        (
            ".env",
            "A=1\ns3cr3t-Pa55w0rd and more\nB=2\nexport =x y\n",
            [],
            "lines 2, 4 cannot be read: fix or remove them",
        ),
        (".env.prod", "ETL_ENV=prod\nmy s3cr3t-Pa55w0rd=x\n", ["--env", "prod"], "line 2 cannot be read"),
    ],
    ids=["garbage", "after-blank-lines", "unclosed-quote", "two-lines", "env-prod"],
)
def test_a_line_of_an_env_file_that_is_not_name_value_is_exit_2_naming_file_and_line(
    demo_home: Path, file: str, text: str, args: list[str], expected: str
) -> None:
    (demo_home / ".env").write_text("ETL_LOG_LEVEL=INFO\n", encoding="utf-8")
    (demo_home / file).write_text(text, encoding="utf-8")
    result = run_process("--project", "sales_demo", *args)
    assert_one_error_line(result, f"{demo_home.resolve() / file}: {expected}")
    assert "the form is NAME=value, e.g. ETL_CONN_ERP=postgresql://etl@db/erp" in result.stderr
    assert "python-dotenv" not in result.stderr  # its own warning is not printed as well
    assert "s3cr3t" not in result.stderr  # a garbage line may be half a password: its text is never shown
    assert metadata_files(demo_home) == []


ENV_FORMS = """\
# a comment, then a blank line

PLAIN=value
export EXPORTED=yes
QUOTED="a value with spaces # and a hash"
SINGLE='single # quoted'
INLINE=value # an inline comment
SPACED = padded
EMPTY=
MULTI="line one
line two"
  INDENTED=ok
REF=${PLAIN}-x
"""


def test_every_valid_form_of_env_line_keeps_working(demo_home: Path) -> None:
    (demo_home / ".env").write_text(ENV_FORMS, encoding="utf-8")
    variables = load_settings().variables
    assert {k: variables[k] for k in ("PLAIN", "EXPORTED", "QUOTED", "SINGLE", "INLINE", "SPACED", "EMPTY")} == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "QUOTED": "a value with spaces # and a hash",
        "SINGLE": "single # quoted",
        "INLINE": "value",
        "SPACED": "padded",
        "EMPTY": "",
    }
    assert (variables["MULTI"], variables["INDENTED"], variables["REF"]) == ("line one\nline two", "ok", "value-x")
    result = run_process("--project", "sales_demo", "--dry-run")
    assert result.code == 0 and result.stderr == "", result.stderr


def test_the_env_example_file_reads_cleanly() -> None:
    assert read_env_file(REPO / ".env.example") == {}  # every line is a comment or blank


def test_an_env_file_that_is_not_utf8_is_exit_2(demo_home: Path) -> None:
    (demo_home / ".env").write_bytes(b"ETL_CONN_ERP_PASSWORD=caf\xe9\n")
    result = run_cli("--project", "sales_demo")
    assert_one_error_line(result, f"{demo_home.resolve() / '.env'}: not UTF-8 text (byte 25); save it as UTF-8")
    assert os.listdir(demo_home / "metadata") == []
