"""``--history``, ``--status`` (SQLite and PostgreSQL warehouses, nothing secret), ``--schedule-print`` and
``--schedule-install cron`` (against a fake ``crontab`` on PATH: the user's real crontab is never touched)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from script_factory.lock import ProjectLock
from tests.conftest import REPO, run_cli
from tests.projects import items_project, items_rows, sqlite_items, write_project

PASSWORD = "pa55-w0rd-never-shown"
FAKE_CRONTAB = """#!/bin/sh
# crontab -l / crontab - on a file, like the real one on the user's crontab
if [ "$1" = "-l" ]; then
    if [ -f "$FAKE_CRONTAB_FILE" ]; then cat "$FAKE_CRONTAB_FILE"; exit 0; fi
    echo "no crontab for $(id -un)" >&2; exit 1
fi
if [ "$1" = "-" ]; then cat > "$FAKE_CRONTAB_FILE"; echo "-" >> "$FAKE_CRONTAB_FILE.calls"; exit 0; fi
exit 2
"""


@pytest.fixture
def loaded(etl_home: Path, warehouse: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Two runs of items_demo (a success, then a failure) in the warehouse, reached through a URL with a
    password (PostgreSQL trusts it; the SQLite URL is the default). Returns the warehouse kind."""
    if warehouse.startswith("postgresql"):
        url = os.environ["ETL_CONN_WAREHOUSE"].replace("postgres@", f"postgres:{PASSWORD}@")
        monkeypatch.setenv("ETL_CONN_WAREHOUSE", url)
    items_project(etl_home, extra='schedule: "30 5 * * 1-5"')
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(7))
    assert run_cli("--project", "items_demo").code == 0
    (etl_home / "customer_code" / "items_demo" / "sql" / "items.sql").write_text("SELECT nonsense FROM items")
    assert run_cli("--project", "items_demo").code == 1
    return warehouse.split(":")[0]


def test_history_shows_the_latest_runs(loaded: str) -> None:
    result = run_cli("--history", "--project", "items_demo", "--last", "5")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split() == [
        "run", "project", "type", "status", "started", "(UTC)", "rows", "duration", "data", "max", "error"
    ]  # fmt: skip
    assert lines[2].split()[:4] == ["2", "items_demo", "I", "failed"]
    assert "query failed" in lines[2]
    assert lines[3].split()[:4] == ["1", "items_demo", "I", "success"]
    assert "7" in lines[3].split() and "2024-01-01 00:07:00" in lines[3]
    assert PASSWORD not in result.stdout + result.stderr
    assert run_cli("--history", "--last", "1").stdout.count("items_demo") == 1


def test_status_shows_watermarks_runs_locks_and_next_runs(loaded: str, etl_home: Path) -> None:
    from croniter import croniter

    if loaded.startswith("postgres"):  # the run lock is the warehouse's advisory lock
        from connectors import open_connector
        from script_factory.warehouse_lock import WarehouseLock
        from utilities.secrets import Secret

        connector = open_connector("warehouse", Secret(os.environ["ETL_CONN_WAREHOUSE"]), etl_home)
        held: Any = WarehouseLock(connector, "items_demo", ["items"])
    else:
        held = ProjectLock(etl_home / "metadata" / "locks", "items_demo")
    with held:
        result = run_cli("--status", "--project", "items_demo")
    assert result.code == 0, result.stderr
    text = result.stdout
    assert PASSWORD not in text + result.stderr
    lines = {line.split(maxsplit=1)[0]: line for line in text.splitlines() if line.startswith("  ") and line.strip()}
    assert "run 1 at" in text and "7 rows, data up to 2024-01-01 00:07:00" in text
    assert "last failure  run 2 at" in text and "query failed" in text
    assert f"lock          HELD by pid {os.getpid()}" in text
    if loaded.startswith("postgres"):  # shared by a run of some tables, and the table's own lock
        assert f"table lock    items: HELD by pid {os.getpid()}" in text
    upcoming = croniter("30 5 * * 1-5", datetime.now().astimezone()).get_next(datetime)
    assert f"next runs {upcoming.strftime('%Y-%m-%d %H:%M')}, " in text
    table = [line for line in text.splitlines() if line.strip().startswith("items ")]
    assert table and "2024-01-01 00:07:00" in table[0] and "(run 1)" in table[0] and "(run 2)" in table[0]
    assert "tables" in lines
    free = run_cli("--status")
    assert "lock          free" in free.stdout


def test_history_and_status_before_any_run(etl_home: Path) -> None:
    items_project(etl_home)
    assert run_cli("--history").stdout.startswith("no runs recorded yet in sqlite:///")
    status = run_cli("--status", "--project", "items_demo")
    assert status.code == 0
    assert "runs          none yet" in status.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--last", "3"), "--last belongs to --history"),
        (("--history", "--status"), "cannot be combined"),
        (("--status", "--project", "../x"), "is not a project name"),
        (("--history", "--project", "nope"), "unknown project 'nope'"),
        (("--schedule-install", "anacron"), "invalid choice"),
    ],
)
def test_bad_report_arguments_are_exit_2(etl_home: Path, args: tuple[str, ...], said: str) -> None:
    result = run_cli(*args)
    assert result.code == 2
    assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def fake_crontab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``crontab`` on PATH that keeps the crontab in a file; returns that file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "crontab"
    script.write_text(FAKE_CRONTAB, encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    file = tmp_path / "crontab.txt"
    monkeypatch.setenv("FAKE_CRONTAB_FILE", str(file))
    return file


def scheduled_projects(home: Path) -> None:
    items_project(home, name="nightly", extra='schedule: "0 6 * * *"')
    items_project(home, name="weekdays", extra='schedule: "15 7 * * 1,3,5"')
    items_project(home, name="odd", extra='schedule: "0 6 1-7 * 1"')
    write_project(home, "unscheduled", "project: unscheduled\ntables: []\n")


def test_schedule_print_shows_crontab_lines_and_schtasks_commands(etl_home: Path) -> None:
    scheduled_projects(etl_home)
    result = run_cli("--schedule-print")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    launch = REPO / "script_runner" / "_launch.sh"
    logs = etl_home / "metadata" / "logs"
    assert f"0 6 * * * cd {REPO} && ETL_HOME={etl_home} {launch} nightly I >> {logs / 'cron_nightly.log'} 2>&1" in lines
    assert f"# >>> script-factory ETL {etl_home} (" in result.stdout
    assert any(
        line.startswith('schtasks /Create /F /TN "ETL weekdays" /SC WEEKLY /D MON,WED,FRI /ST 07:15 /RU SYSTEM /TR "')
        for line in lines
    )
    assert any(line.startswith('schtasks /Create /F /TN "ETL nightly" /SC DAILY /ST 06:00 ') for line in lines)
    assert any(line.startswith('rem odd: "0 6 1-7 * 1" has no schtasks equivalent') for line in lines)
    assert "unscheduled" not in result.stdout
    assert not (etl_home / "metadata" / "logs").exists()  # printing writes nothing


def test_schedule_install_is_idempotent_and_keeps_other_lines(etl_home: Path, fake_crontab: Path) -> None:
    scheduled_projects(etl_home)
    fake_crontab.write_text("MAILTO=ops@example.com\n0 1 * * * /usr/local/bin/backup.sh\n", encoding="utf-8")

    first = run_cli("--schedule-install", "cron")
    assert first.code == 0, first.stderr
    assert first.stdout.startswith("crontab: installed 3 line(s) for nightly, odd, weekdays")
    installed = fake_crontab.read_text(encoding="utf-8").splitlines()
    assert installed[:2] == ["MAILTO=ops@example.com", "0 1 * * * /usr/local/bin/backup.sh"]
    assert installed[2].startswith(f"# >>> script-factory ETL {etl_home} ")
    assert installed[-1] == f"# <<< script-factory ETL {etl_home}"
    assert [line.split(" cd ")[0] for line in installed[3:-1]] == ["0 6 * * *", "0 6 1-7 * 1", "15 7 * * 1,3,5"]
    assert (etl_home / "metadata" / "logs").is_dir()

    again = run_cli("--schedule-install", "cron")
    assert again.code == 0 and again.stdout.startswith("crontab unchanged")
    assert fake_crontab.read_text(encoding="utf-8").splitlines() == installed
    assert Path(f"{fake_crontab}.calls").read_text().count("-") == 1  # written once

    # a schedule changed: the block is replaced, the other lines stay
    items_project(etl_home, name="nightly", extra='schedule: "0 4 * * *"')
    assert run_cli("--schedule-install", "cron").code == 0
    changed = fake_crontab.read_text(encoding="utf-8").splitlines()
    assert changed[:3] == installed[:3] and len(changed) == len(installed)
    assert changed[3].startswith("0 4 * * * cd ")
    assert sum(line.startswith("# >>> script-factory ETL") for line in changed) == 1


def test_schedule_install_into_an_empty_crontab(etl_home: Path, fake_crontab: Path) -> None:
    scheduled_projects(etl_home)
    assert run_cli("--schedule-install", "cron").code == 0
    assert fake_crontab.read_text(encoding="utf-8").splitlines()[0].startswith("# >>> script-factory ETL")


def test_schedule_install_without_crontab_is_exit_2(
    etl_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduled_projects(etl_home)
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = run_cli("--schedule-install", "cron")
    assert result.code == 2
    assert "crontab was not found on PATH" in result.stderr
