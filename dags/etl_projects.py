"""Airflow DAGs generated from the projects: one DAG per customer_code/<project>/project.yml.

A thin wrapper: each task runs ``script_runner.py`` in the runner's own virtual environment (never
Airflow's), so every task writes the same audit rows as a launcher's run, with Airflow's run id in
``etl_runs.orchestrator_run_id``. Parsing reads the YAML files only: no database, no runner import.

Tasks of a project's DAG (each a separate run of the runner, ``--steps``):

    prepare (DDL, before_load) >> load.<table> | load.<group> (in parallel) >> finish (checks, aggregations, outputs)

``depends_on`` (issue 12's ``[{project: X, max_age: 6h}]``, or plain names) becomes Airflow assets:
the ``finish`` task of project X updates the asset ``etl_project.X``, and a project depending on X is
scheduled on it (with its own cron too, either one triggers). Assets rather than an
ExternalTaskSensor: the two DAGs need no matching logical dates or schedules, no worker slot is held
while waiting, and the dependency shows in Airflow's asset graph; the freshness (``max_age``) stays the
runner's own check at run time.

Where things are (read on each worker when the task runs, except ETL_HOME, read when parsing):
``ETL_RUNNER_HOME`` the runner's checkout (default: the folder above this file's ``dags/``);
``ETL_RUNNER_PYTHON`` the runner venv's python (default: the launcher ``script_runner/_launch.sh``,
which makes ``.venv`` on first use); ``ETL_HOME`` the folder holding ``customer_code/`` (default: the
runner's checkout). A project.yml that cannot be read becomes an import error naming the file; the
other projects' DAGs still load.
"""

from __future__ import annotations

import os
import re
import shlex
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import yaml
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset, TaskGroup

RUNNER_HOME = Path(__file__).resolve().parent.parent
PROJECTS = Path(os.environ.get("ETL_HOME") or RUNNER_HOME) / "customer_code"
START = pendulum.datetime(2024, 1, 1, tz="UTC")
FINISH_SECTIONS = ("after_load", "checks", "aggregations", "outputs")
RUNNER = " ".join(  # the runner's venv python when ETL_RUNNER_PYTHON says where, else the launcher
    (
        'home="${{ETL_RUNNER_HOME:-{home}}}";',
        'if [ -n "${{ETL_RUNNER_PYTHON:-}}" ];',
        'then set -- "$ETL_RUNNER_PYTHON" "$home/script_runner.py" --project {project} --load-type I;',
        'else set -- "$home/script_runner/_launch.sh" {project} I; fi;',
        'exec "$@" --orchestrator-run-id "$AIRFLOW_RUN_ID" {args}',
    )
)


class ProjectFileError(Exception):
    """A project.yml the DAG file cannot use; raised while Airflow validates the stand-in DAG below."""


class _UnreadableProjects(DAG):
    """Stands for the project.yml files that could not be read: Airflow calls ``validate()`` on every DAG
    of this file and records its exception as this file's import error, while it keeps the others."""

    problems: tuple[str, ...] = ()

    def validate(self) -> None:
        raise ProjectFileError("; ".join(self.problems))


def asset_of(project: str) -> Asset:
    return Asset(name=f"etl_project.{project}")


def task_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def read_project(path: Path) -> dict[str, Any]:
    """The parts of a project.yml the DAG needs; ProjectFileError naming the file and key when unusable."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProjectFileError(f"{path}: cannot be read as YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ProjectFileError(f"{path}: expected a mapping of keys (project:, tables:...)")
    if doc.get("project") != path.parent.name:
        raise ProjectFileError(f"{path}: project: must equal the folder name {path.parent.name!r}")
    airflow = doc.get("airflow") or {}
    tables = doc.get("tables") or []
    if not isinstance(airflow, dict) or not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ProjectFileError(f"{path}: airflow: must be a mapping and tables: a list of mappings")
    if airflow.get("windows", "watermark") not in ("watermark", "interval"):
        raise ProjectFileError(f"{path}: airflow.windows: expected watermark or interval")
    if airflow.get("windows") == "interval" and not doc.get("schedule"):
        raise ProjectFileError(f"{path}: airflow.windows: interval needs a schedule: (a cron expression)")
    depends = [d.get("project") if isinstance(d, dict) else d for d in doc.get("depends_on") or []]
    if not all(isinstance(d, str) and d for d in depends):
        raise ProjectFileError(f"{path}: depends_on: expected project names or {{project: NAME, max_age: ...}}")
    return {**doc, "airflow": airflow, "tables": tables, "depends_on": depends}


def load_groups(tables: list[dict[str, Any]]) -> dict[str, list[str]] | None:
    """Task name -> the target tables it loads (``airflow: {group: ...}`` shares a task); None when a
    pattern entry's tables are known only at run time (one task then loads them all)."""
    groups: dict[str, list[str]] = {}
    for table in tables:
        if "target" not in table:
            return None
        group = (table.get("airflow") or {}).get("group") or str(table["target"])
        groups.setdefault(task_name(group), []).append(str(table["target"]))
    return groups


def command(project: str, args: list[str], windows: str) -> str:
    if windows == "interval":  # Airflow's data interval: reruns and Airflow's backfill load the same rows
        args = [
            "--start-date",
            "{{ data_interval_start.isoformat() }}",
            "--end-date",
            "{{ data_interval_end.isoformat() }}",
            *args,
        ]
    quoted = " ".join(a if a.startswith("{{") else shlex.quote(a) for a in args)
    return RUNNER.format(home=shlex.quote(str(RUNNER_HOME)), project=shlex.quote(project), args=quoted)


def schedule_of(doc: dict[str, Any]) -> Any:
    cron, windows, upstream = doc.get("schedule"), doc["airflow"].get("windows"), doc["depends_on"]
    timetable: Any = cron
    if cron and windows == "interval":
        from airflow.timetables.interval import CronDataIntervalTimetable

        timetable = CronDataIntervalTimetable(cron, timezone="UTC")
    if not upstream:
        return timetable
    assets = [asset_of(name) for name in upstream]
    if not cron:
        return assets  # runs once every upstream project has finished since its last run
    from airflow.timetables.assets import AssetOrTimeSchedule

    if isinstance(timetable, str):
        from airflow.timetables.trigger import CronTriggerTimetable

        timetable = CronTriggerTimetable(timetable, timezone="UTC")
    from airflow.sdk import AssetAll

    return AssetOrTimeSchedule(timetable=timetable, assets=AssetAll(*assets))


def build_dag(doc: dict[str, Any]) -> DAG:
    project, airflow = str(doc["project"]), doc["airflow"]
    retries = doc.get("retries") or {}
    windows = airflow.get("windows", "watermark")
    dag = DAG(
        dag_id=project,
        description=doc.get("description") or None,
        doc_md=doc.get("description") or None,
        schedule=schedule_of(doc),
        start_date=START,
        catchup=bool(airflow.get("catchup", False)),
        max_active_runs=1,  # a whole-project phase (prepare, finish) locks the project in the warehouse
        tags=["etl", project, *(str(t) for t in airflow.get("tags") or [])],
        default_args={
            "owner": str(airflow.get("owner") or "airflow"),
            "retries": max(int(retries.get("attempts", 1)) - 1, 0),
            "retry_delay": timedelta(seconds=float(retries.get("backoff_seconds", 5))),
        },
    )
    outlets = [asset_of(project)]
    with dag:
        prepare = None
        if doc.get("ddl") or doc.get("before_load"):
            prepare = BashOperator(
                task_id="prepare", bash_command=command(project, ["--steps", "prepare"], windows), **_env()
            )
        finishing = any(doc.get(section) for section in FINISH_SECTIONS)
        groups = load_groups(doc["tables"])
        with TaskGroup("load"):
            if groups is None:
                everything = command(project, ["--steps", "load"], windows)
                loads = [
                    BashOperator(task_id="all", bash_command=everything, outlets=[] if finishing else outlets, **_env())
                ]
            else:
                loads = [
                    BashOperator(
                        task_id=name,
                        bash_command=command(project, ["--steps", "load", "--tables", ",".join(targets)], windows),
                        outlets=[] if finishing else outlets,
                        **_env(),
                    )
                    for name, targets in groups.items()
                ]
        if prepare is not None:
            prepare >> loads
        if finishing:
            finish = BashOperator(
                task_id="finish",
                bash_command=command(project, ["--steps", "finish"], windows),
                outlets=outlets,
                **_env(),
            )
            loads >> finish
            if not loads and prepare is not None:
                prepare >> finish
    return dag


def _env() -> dict[str, Any]:
    return {"env": {"AIRFLOW_RUN_ID": "{{ run_id }}"}, "append_env": True}


def generate(projects: Path) -> dict[str, DAG]:
    """The DAGs of every readable project under ``projects``, plus one stand-in for the unreadable ones."""
    dags: dict[str, DAG] = {}
    problems = []
    for path in sorted(projects.glob("*/project.yml")):
        try:
            dags[path.parent.name] = build_dag(read_project(path))
        except ProjectFileError as exc:
            problems.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bad value (cron, retries) is this project's import error only
            problems.append(f"{path}: {type(exc).__name__}: {exc}")
    if problems:
        broken = _UnreadableProjects(dag_id="etl_unreadable_projects", schedule=None, start_date=START)
        broken.problems = tuple(problems)
        dags[broken.dag_id] = broken
    return dags


globals().update(generate(PROJECTS))
