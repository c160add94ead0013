"""``--steps`` (one phase of a run, for an orchestrator's task) and ``--orchestrator-run-id``."""

from __future__ import annotations

from pathlib import Path

import pytest

from script_factory.factory import build_plan
from script_factory.request import ALL_STEPS, RunRequest, Step
from script_factory.settings import load_settings
from script_runner import parse_request
from utilities.errors import ConfigError


def names(**request: object) -> list[str]:
    plan = build_plan(RunRequest(project="sales_demo", **request), load_settings())  # type: ignore[arg-type]
    return [t.name for t in plan.tasks]


def test_steps_default_to_every_phase() -> None:
    request, _ = parse_request(["--project", "p"])
    assert request is not None and request.steps == ALL_STEPS and request.orchestrator_run_id is None


def test_steps_and_the_orchestrator_run_id_are_parsed() -> None:
    request, _ = parse_request(
        ["--project", "p", "--steps", "Load, finish", "--orchestrator-run-id", "scheduled__2026-01-01T06:00:00+00:00"]
    )
    assert request is not None
    assert request.steps == {Step.LOAD, Step.FINISH}
    assert request.orchestrator_run_id == "scheduled__2026-01-01T06:00:00+00:00"


@pytest.mark.parametrize("value", ["loads", "", "prepare,nope"])
def test_an_unknown_step_is_one_line_naming_the_known_ones(value: str) -> None:
    with pytest.raises(ConfigError, match="prepare, load, finish"):
        parse_request(["--project", "p", "--steps", value])


def test_steps_do_not_apply_to_verify() -> None:
    with pytest.raises(ConfigError, match="--steps does not apply"):
        parse_request(["--project", "p", "--verify", "--steps", "load"])


def test_each_phase_assembles_its_own_tasks(demo_home: Path) -> None:
    assert names(steps=frozenset({Step.PREPARE})) == ["warehouse_ddl", "before_load:simulate_day"]
    assert names(steps=frozenset({Step.LOAD})) == ["load:dim_customer", "load:dim_product", "load:fact_order_lines"]
    assert names(steps=frozenset({Step.FINISH})) == ["aggregate:daily_sales", "output:daily_sales"]
    assert names(steps=frozenset({Step.LOAD}), tables=("dim_product",)) == ["load:dim_product"]
    assert names() == [
        *names(steps=frozenset({Step.PREPARE})),
        *names(steps=frozenset({Step.LOAD})),
        *names(steps=frozenset({Step.FINISH})),
    ]
