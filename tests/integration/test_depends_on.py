"""``depends_on``: a run checks its upstream projects' latest runs before any task and stops with exit
code 5 (a ``skipped`` audit row, one line naming the upstream and its state) when one is not ready;
``--list`` shows the dependencies; a bad ``depends_on`` is exit 2."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import query, run_cli
from tests.projects import items_project, items_rows, sqlite_items, write_project

DOWNSTREAM = """
project: reporting
connections:
  src:
    default: sqlite:///metadata/src.db
depends_on:
  - {project: staging_erp, max_age: 6h}
tables:
  - {target: items_copy, source: {connection: src, table: items}, strategy: merge, keys: [id], cursor: updated_at}
"""
# What the downstream's source becomes while its upstream is not ready: nothing listens on port 1, so a
# run that connected to it would fail with exit 1 instead of stopping with 5.
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing"


@pytest.fixture
def projects(etl_home: Path) -> Path:
    items_project(etl_home, name="staging_erp")
    write_project(etl_home, "reporting", DOWNSTREAM)
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(5))
    return etl_home


def runs_of(warehouse: str, project: str) -> list[tuple]:
    return query(
        warehouse,
        "SELECT run_id, status, error_message FROM etl_runs WHERE project = :p ORDER BY run_id",
        p=project,
    )


def test_a_run_waits_for_its_upstream(projects: Path, warehouse: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_CONN_SRC", UNREACHABLE)
    never = run_cli("--project", "reporting")
    assert never.code == 5, never.stderr
    assert never.stderr.strip().splitlines()[-1] == (  # the log lines are on stderr too, before it
        "script_runner.py: upstream not ready, reporting skipped: project staging_erp has never run in this "
        "warehouse (run it first)"
    )
    [(run_id, status, error)] = runs_of(warehouse, "reporting")
    assert status == "skipped" and "staging_erp has never run" in error
    assert query(warehouse, "SELECT count(*) FROM etl_task_runs WHERE run_id = :r", r=run_id) == [(0,)]
    assert "SKIPPED" in never.stdout and "exit code 5" in never.stdout

    # the upstream's latest run failed (its source is missing)
    monkeypatch.setenv("ETL_CONN_SRC", "sqlite:///metadata/no/such/folder/src.db")
    assert run_cli("--project", "staging_erp").code == 2  # a ConfigError at the load: the run failed
    monkeypatch.setenv("ETL_CONN_SRC", UNREACHABLE)
    failed = run_cli("--project", "reporting")
    assert failed.code == 5
    assert "project staging_erp: its latest run 2 is failed" in failed.stderr

    # once the upstream has succeeded, the downstream runs
    monkeypatch.delenv("ETL_CONN_SRC")
    assert run_cli("--project", "staging_erp").code == 0
    ok = run_cli("--project", "reporting")
    assert ok.code == 0, ok.stderr
    assert query(warehouse, "SELECT count(*) FROM items_copy") == [(5,)]
    assert [r[1] for r in runs_of(warehouse, "reporting")] == ["skipped", "skipped", "success"]


def test_an_upstream_older_than_max_age_is_not_ready(projects: Path, warehouse: str) -> None:
    assert run_cli("--project", "staging_erp").code == 0
    from sqlalchemy import create_engine, text

    from utilities.dates import utc_now

    engine = create_engine(warehouse)
    with engine.begin() as conn:  # the upstream's success ended seven hours ago
        conn.execute(text("UPDATE etl_runs SET end_execution_time = :t"), {"t": utc_now() - timedelta(hours=7)})
    engine.dispose()

    result = run_cli("--project", "reporting")
    assert result.code == 5
    assert "project staging_erp: its latest run 1 succeeded 7h ago" in result.stderr
    assert "longer ago than max_age 6h" in result.stderr
    assert runs_of(warehouse, "reporting")[-1][1] == "skipped"


def test_list_shows_the_dependencies(projects: Path) -> None:
    result = run_cli("--list")
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert lines[lines.index("reporting") + 1] == "  depends on: staging_erp (max_age 6h)"


@pytest.mark.parametrize(
    ("depends_on", "said"),
    [
        ("[{project: staging_erq}]", "depends_on: unknown project 'staging_erq'"),
        ("[{project: reporting}]", "a project cannot depend on itself"),
        ("[{project: staging_erp, max_age: soon}]", "a duration such as"),
        ("[{project: staging_erp}, {project: staging_erp}]", "appears twice"),
        ("[{project: staging_erp, age: 6h}]", "age"),
    ],
)
def test_a_bad_depends_on_is_exit_2(projects: Path, depends_on: str, said: str) -> None:
    yml = DOWNSTREAM.replace("  - {project: staging_erp, max_age: 6h}\n", "").replace(
        "depends_on:", f"depends_on: {depends_on}"
    )
    write_project(projects, "reporting", yml)
    result = run_cli("--project", "reporting", "--dry-run")
    assert result.code == 2
    assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1
