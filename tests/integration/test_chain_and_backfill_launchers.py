"""``chain.sh`` runs projects in order and stops at the first failure with its exit code; ``backfill.sh``
turns ``PROJECT START END [LOAD_DAYS] [flags]`` into a ``--backfill`` run. Both run for real, from a copy
of the launchers beside a .venv whose python is this test's (nothing is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from tests.conftest import REPO, query
from tests.integration.test_new_project import checkout_home
from tests.projects import items_project, items_rows, sqlite_items


def launchers(home: Path) -> Path:
    checkout_home(home)
    for name in ("chain.sh", "backfill.sh"):
        shutil.copy2(REPO / "script_runner" / name, home / "script_runner" / name)
    return home / "script_runner"


def sh(script: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")} | {"ETL_HOME": str(home)}
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_chain_stops_at_the_first_failure_and_passes_its_code_on(etl_home: Path) -> None:
    folder = launchers(etl_home)
    for name in ("first", "second", "third"):
        items_project(etl_home, name=name)
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(3))
    (etl_home / "customer_code" / "second" / "project.yml").write_text("project: second\ntables: {}\n")
    url = f"sqlite:///{etl_home / 'metadata' / 'warehouse.db'}"

    failed = sh(folder / "chain.sh", "first", "second", "third", home=etl_home)
    assert failed.returncode == 2, failed.stderr
    assert "chain: second ended with exit code 2; the projects after it did not run" in failed.stderr
    assert query(url, "SELECT project, status FROM etl_runs ORDER BY run_id") == [("first", "success")]

    items_project(etl_home, name="second")
    ok = sh(folder / "chain.sh", "first", "second", "third", home=etl_home)
    assert ok.returncode == 0, ok.stderr
    assert [r[0] for r in query(url, "SELECT project FROM etl_runs ORDER BY run_id")] == [
        "first",
        "first",
        "second",
        "third",
    ]
    usage = sh(folder / "chain.sh", home=etl_home)
    assert usage.returncode == 2 and "usage: chain.sh PROJECT" in usage.stderr


def test_backfill_launcher(etl_home: Path) -> None:
    folder = launchers(etl_home)
    items_project(etl_home, name="bf")
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(3 * 24 * 60, base=datetime(2024, 1, 1)))
    done = sh(folder / "backfill.sh", "bf", "2024-01-01", "2024-01-03", "1", home=etl_home)
    assert done.returncode == 0, done.stderr
    assert "chunk 2/2, 2024-01-02..2024-01-03, 1,440 rows" in done.stdout
    url = f"sqlite:///{etl_home / 'metadata' / 'warehouse.db'}"
    assert query(url, "SELECT count(*) FROM etl_backfill_chunks WHERE status = 'success'") == [(2,)]
    again = sh(folder / "backfill.sh", "bf", "2024-01-01", "2024-01-03", "1", "--restart", home=etl_home)
    assert again.returncode == 0 and "starting over" in again.stdout
    usage = sh(folder / "backfill.sh", "bf", "2024-01-01", home=etl_home)
    assert usage.returncode == 2 and "usage: backfill.sh PROJECT START END" in usage.stderr
