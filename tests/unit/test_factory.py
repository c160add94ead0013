"""The factory: project.yml -> ordered tasks bound with functools.partial, and no database I/O."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pytest

from script_factory.factory import build_plan
from script_factory.request import RunRequest
from script_factory.settings import load_settings
from utilities.errors import ConfigError


def plan_for(project: str = "sales_demo"):
    return build_plan(RunRequest(project=project), load_settings())


def test_the_demo_assembles_in_stage_order(demo_home: Path) -> None:
    plan = plan_for()
    assert [t.name for t in plan.tasks] == [
        "warehouse_ddl",
        "before_load:simulate_day",
        "load:dim_customer",
        "load:dim_product",
        "load:fact_order_lines",
        "aggregate:daily_sales",
        "output:daily_sales",
    ]
    load = plan.tasks[4]
    assert isinstance(load.run, partial)
    assert load.run.keywords["table"].keys == ("order_id", "line_number")
    assert "FROM order_lines AS l" in load.run.keywords["sql"]
    assert load.target_table == "fact_order_lines"
    # the checks on a table this run loads are that load's gates, run inside its transaction
    assert [c.name for c in load.run.keywords["checks"]] == [
        "not_null_fact_order_lines",
        "unique_fact_order_lines",
        "accepted_values_fact_order_lines",
    ]
    assert [c.name for c in plan.tasks[2].run.keywords["checks"]] == ["row_count_dim_customer"]


def test_the_factory_touches_no_database(demo_home: Path) -> None:
    plan_for()
    assert not (demo_home / "metadata" / "warehouse.db").exists()
    assert not (demo_home / "metadata" / "sales_demo").exists()


def test_unknown_project_lists_the_known_ones(demo_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown project 'nope'.*known projects: sales_demo"):
        plan_for("nope")


def _edit(home: Path, old: str, new: str) -> None:
    path = home / "customer_code" / "sales_demo" / "project.yml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_missing_sql_file_is_named(demo_home: Path) -> None:
    (demo_home / "customer_code" / "sales_demo" / "sql" / "products.sql").unlink()
    with pytest.raises(ConfigError, match=r"tables \(dim_product\)\.source\.query: file .*products\.sql not found"):
        plan_for()


def test_a_missing_ddl_file_is_named(demo_home: Path) -> None:
    shutil.rmtree(demo_home / "warehouse" / "sales_demo")
    with pytest.raises(ConfigError, match=r"ddl \(sales_demo/001_dimensions\.sql\): file .* not found"):
        plan_for()


def test_an_unknown_function_is_named(demo_home: Path) -> None:
    _edit(demo_home, "function: simulate_day", "function: simulate_week")
    with pytest.raises(ConfigError, match=r"'simulate_week' is not a function in .*script_worker\.py"):
        plan_for()


def test_wrong_function_parameters_are_named(demo_home: Path) -> None:
    _edit(demo_home, "connection: sales_src\n\ntables", "connection: sales_src\n      days: 3\n\ntables")
    with pytest.raises(ConfigError, match=r"before_load \(simulate_day\)\.params: .*'days'"):
        plan_for()


def test_a_connection_without_url_names_its_variable(demo_home: Path) -> None:
    _edit(demo_home, "    default: sqlite:///metadata/sales_demo/source.db", "")
    with pytest.raises(ConfigError, match=r"connection 'sales_src' has no URL; set ETL_CONN_SALES_SRC"):
        plan_for()


def test_an_unknown_url_scheme_is_refused(demo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_CONN_SALES_SRC", "ftp://files.example.com/x")
    with pytest.raises(ConfigError, match=r"no connector for URL scheme 'ftp'"):
        plan_for()


def test_environment_overrides_the_default_url(demo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_CONN_SALES_SRC", "sqlite:///elsewhere.db")
    assert plan_for().connection_urls["sales_src"].reveal() == "sqlite:///elsewhere.db"


def test_env_files_are_read_in_order(demo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (demo_home / ".env").write_text("ETL_CONN_SALES_SRC=sqlite:///from-env.db\nETL_ENV=dev\n", encoding="utf-8")
    (demo_home / ".env.prod").write_text("ETL_CONN_SALES_SRC=sqlite:///from-prod.db\n", encoding="utf-8")
    assert load_settings().get("ETL_CONN_SALES_SRC") == "sqlite:///from-env.db"
    prod = load_settings("prod")
    assert prod.get("ETL_CONN_SALES_SRC") == "sqlite:///from-prod.db" and prod.environment == "prod"
    monkeypatch.setenv("ETL_CONN_SALES_SRC", "sqlite:///from-process.db")
    assert load_settings("prod").get("ETL_CONN_SALES_SRC") == "sqlite:///from-process.db"
    with pytest.raises(ConfigError, match=r"--env staging: file .*\.env\.staging not found"):
        load_settings("staging")


def test_a_step_parameter_that_does_not_fit_its_signature_is_a_config_error_at_build_time() -> None:
    from script_factory.factory import make_task
    from script_factory.task import StepResult

    def step(ctx: object, *, table: str, sql: str | None = None) -> StepResult:
        return StepResult()

    assert make_task("load:t", "load", step, table="t").run.keywords == {"table": "t"}
    with pytest.raises(ConfigError, match=r"task load:t: .*step: no parameter 'tabel' \(it takes table, sql\)"):
        make_task("load:t", "load", step, tabel="t")
    with pytest.raises(ConfigError, match=r"task load:t: .*missing a required argument: 'table'"):
        make_task("load:t", "load", step, sql="SELECT 1")


def test_a_merge_into_a_target_that_cannot_merge_is_refused_with_exit_2(
    demo_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from connectors.sqlite import SqliteConnector
    from tests.conftest import run_cli

    monkeypatch.setattr(SqliteConnector, "capabilities", replace(SqliteConnector.capabilities, merge=False))
    result = run_cli("--project", "sales_demo", "--dry-run")
    assert result.code == 2
    assert "tables (dim_customer).strategy: connection 'warehouse' (SQLite) cannot merge" in result.stderr
    assert result.stderr.count("\n") == 1
