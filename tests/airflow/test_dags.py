"""dags/etl_projects.py on a real Airflow 3 (its own venv, .ci/airflow_venv.sh; a SQLite metadata
database under a temp AIRFLOW_HOME): import errors, the task graph, ``airflow dags test`` of the demo
into PostgreSQL, and the warehouse lock between two table tasks. Marker ``airflow``: left out of the
default run, run by .ci/run (where CI=1 makes a missing Airflow fail instead of skip)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, query

pytestmark = pytest.mark.airflow

VENV = Path(os.environ.get("AIRFLOW_VENV") or Path.home() / ".cache" / "etl-runner" / "airflow-venv")
AIRFLOW = VENV / "bin" / "airflow"

THREE_TABLES = """
project: shop
description: Three tables, two of them in one task
schedule: "0 6 * * *"
depends_on: [{project: crm, max_age: 6h}]
retries: {attempts: 3, backoff_seconds: 30}
airflow: {owner: data-team, tags: [sales], windows: interval}
ddl: [shop/001.sql]
tables:
  - {target: orders, source: {connection: src, table: orders}, strategy: append, cursor: updated_at}
  - {target: lines, source: {connection: src, table: lines}, strategy: append, cursor: updated_at,
     airflow: {group: detail}}
  - {target: returns, source: {connection: src, table: returns}, strategy: append, cursor: updated_at,
     airflow: {group: detail}}
aggregations: [{name: daily, file: shop/daily.sql}]
"""
CRM = """
project: crm
tables:
  - {target: accounts, source: {connection: src, table: accounts}, strategy: append, cursor: updated_at}
"""


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not AIRFLOW.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Airflow is not installed in {VENV}: .ci/run installs it with .ci/airflow_venv.sh")
        pytest.skip(f"Airflow is not installed in {VENV} (run .ci/airflow_venv.sh)")
    home = tmp_path_factory.mktemp("airflow_home")
    result = subprocess.run([str(AIRFLOW), "db", "migrate"], env=_env(home, {}), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return home


def _env(airflow_home: Path, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "ETL_RUNNER_PYTHON": sys.executable,  # the runner's venv (the launcher would build .venv)
        **extra,
    }


def airflow(airflow_home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIRFLOW), *args], env=_env(airflow_home, extra), capture_output=True, text=True, timeout=600
    )


def import_errors(airflow_home: Path, etl_home: Path) -> list[dict[str, str]]:
    """The import errors, as ``airflow dags list-import-errors`` shows them (it exits 1 when there are some)."""
    result = airflow(airflow_home, "dags", "list-import-errors", "--local", "-o", "json", ETL_HOME=str(etl_home))
    errors = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == (1 if errors else 0), result.stderr[-2000:]
    return errors


def dag_ids(airflow_home: Path, etl_home: Path) -> set[str]:
    result = airflow(airflow_home, "dags", "list", "--local", "-o", "json", ETL_HOME=str(etl_home))
    assert result.returncode == 0, result.stderr[-2000:]
    return {d["dag_id"] for d in json.loads(result.stdout.strip().splitlines()[-1])}


def write(home: Path, name: str, text: str) -> None:
    (home / "customer_code" / name).mkdir(parents=True, exist_ok=True)
    (home / "customer_code" / name / "project.yml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def test_the_demo_has_no_import_error_and_a_broken_project_yml_is_one(airflow_home: Path, demo_home: Path) -> None:
    assert import_errors(airflow_home, demo_home) == []
    assert dag_ids(airflow_home, demo_home) == {"sales_demo"}

    write(demo_home, "broken", "project: broken\ntables: [oops\n")
    errors = import_errors(airflow_home, demo_home)

    assert len(errors) == 1
    assert errors[0]["filepath"].endswith("dags/etl_projects.py")
    assert f"{demo_home}/customer_code/broken/project.yml: cannot be read as YAML" in errors[0]["error"]
    assert dag_ids(airflow_home, demo_home) == {"sales_demo"}  # the other projects still load


GRAPH = """
import json
from airflow.models.dagbag import DagBag
dag = DagBag(include_examples=False).dags["shop"]
print(json.dumps({
    "tasks": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
    "commands": {t.task_id: t.bash_command for t in dag.tasks},
    "outlets": {t.task_id: [o.name for o in t.outlets] for t in dag.tasks},
    "schedule": type(dag.timetable).__name__,
    "assets": [a.name for _, a in dag.timetable.asset_condition.iter_assets()],
    "owner": dag.owner, "tags": sorted(dag.tags), "retries": dag.default_args["retries"],
    "retry_delay": dag.default_args["retry_delay"].total_seconds(), "doc": dag.doc_md, "catchup": dag.catchup,
}))
"""


def test_the_task_graph_of_a_three_table_project_with_depends_on(airflow_home: Path, etl_home: Path) -> None:
    write(etl_home, "shop", THREE_TABLES)
    write(etl_home, "crm", CRM)
    result = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", GRAPH],
        env=_env(airflow_home, {"ETL_HOME": str(etl_home)}),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    graph = json.loads(result.stdout.strip().splitlines()[-1])

    assert graph["tasks"] == {
        "prepare": ["load.detail", "load.orders"],
        "load.orders": ["finish"],
        "load.detail": ["finish"],
        "finish": [],
    }
    commands = graph["commands"]
    assert "--steps prepare" in commands["prepare"]
    assert "--steps load --tables orders" in commands["load.orders"]
    assert "--steps load --tables lines,returns" in commands["load.detail"]
    assert "--steps finish" in commands["finish"]
    assert all("--start-date {{ data_interval_start.isoformat() }}" in c for c in commands.values())
    assert all('--orchestrator-run-id "$AIRFLOW_RUN_ID"' in c for c in commands.values())
    # depends_on: crm's finish updates its asset; shop runs on its cron or on that asset
    assert graph["outlets"]["finish"] == ["etl_project.shop"]
    assert graph["schedule"] == "AssetOrTimeSchedule" and graph["assets"] == ["etl_project.crm"]
    assert (graph["owner"], graph["tags"], graph["retries"], graph["retry_delay"]) == (
        "data-team",
        ["etl", "sales", "shop"],
        2,
        30.0,
    )
    assert graph["doc"] == "Three tables, two of them in one task" and graph["catchup"] is False


def test_dags_test_runs_the_demo_into_postgresql_with_the_airflow_run_id(
    airflow_home: Path, demo_home: Path, pg_url: str
) -> None:
    result = airflow(
        airflow_home, "dags", "test", "sales_demo", "2026-01-02", ETL_HOME=str(demo_home), ETL_CONN_WAREHOUSE=pg_url
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])

    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    runs = query(url, "SELECT status, target_table, orchestrator_run_id FROM etl_runs ORDER BY run_id")
    # prepare, the three table tasks (in any order), finish
    assert [table for _, table, _ in runs][0] is None and [table for _, table, _ in runs][-1] is None
    assert sorted(table for _, table, _ in runs[1:-1]) == ["dim_customer", "dim_product", "fact_order_lines"]
    assert {status for status, _, _ in runs} == {"success"}
    run_ids = {r for _, _, r in runs}
    assert len(run_ids) == 1 and next(iter(run_ids)).startswith("manual__"), run_ids
    assert query(url, "SELECT count(*) > 0 FROM fact_order_lines") == [(True,)]
    assert query(url, "SELECT count(*) > 0 FROM agg_daily_sales") == [(True,)]


HOLDER = """
import pathlib, sys, time
sys.path.insert(0, {repo!r})
from connectors import open_connector
from script_factory.warehouse_lock import WarehouseLock
from utilities.secrets import Secret
connector = open_connector("warehouse", Secret(sys.argv[1]), pathlib.Path("."))
WarehouseLock(connector, "sales_demo", ["dim_customer"]).acquire()
print("held", flush=True)
time.sleep(300)
"""


def test_two_table_tasks_run_at_once_while_the_same_table_is_locked(
    airflow_home: Path, demo_home: Path, pg_url: str
) -> None:
    env = {"ETL_HOME": str(demo_home), "ETL_CONN_WAREHOUSE": pg_url}
    prepare = airflow(airflow_home, "tasks", "test", "sales_demo", "prepare", "2026-01-02", **env)
    assert prepare.returncode == 0, prepare.stderr[-3000:]
    holder = subprocess.Popen(  # a run of dim_customer, say on another host, holds its table's lock
        [sys.executable, "-c", HOLDER.format(repo=str(REPO)), pg_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        same = airflow(airflow_home, "tasks", "test", "sales_demo", "load.dim_customer", "2026-01-02", **env)
        other = airflow(airflow_home, "tasks", "test", "sales_demo", "load.dim_product", "2026-01-02", **env)
    finally:
        holder.kill()
        holder.wait()

    # `airflow tasks test` exits 0 even when the task fails (Airflow 3.1): its log says how it ended
    output = same.stdout + same.stderr
    assert "Bash command failed. The command returned a non-zero exit code 3." in output, output[-3000:]
    assert other.returncode == 0, (other.stdout[-3000:], other.stderr[-3000:])
    url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    assert query(url, "SELECT target_table, status FROM etl_runs WHERE target_table IS NOT NULL") == [
        ("dim_product", "success")
    ]


def test_the_venv_is_separate() -> None:
    assert shutil.which("airflow", path=str(Path(sys.executable).parent)) is None  # never in the runner's venv
