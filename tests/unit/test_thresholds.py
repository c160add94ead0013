"""The error_if / warn_if conditions: their grammar, exact percentages, the verdict, and how a check spec
turns severity into conditions."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from data_quality_checks.thresholds import Threshold, parse_threshold, percent_text, share, verdict
from script_factory.config import ANY_FAILING, CheckSpec, Severity, parse_project
from utilities.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (">0", Threshold(">", Fraction(0))),
        (">= 10", Threshold(">=", Fraction(10))),
        ("=0", Threshold("=", Fraction(0))),
        ("!=0", Threshold("!=", Fraction(0))),
        ("<5", Threshold("<", Fraction(5))),
        ("<=3", Threshold("<=", Fraction(3))),
        (">1%", Threshold(">", Fraction(1), percent=True)),
        (" >0.5 % ", Threshold(">", Fraction(1, 2), percent=True)),
        (">=100%", Threshold(">=", Fraction(100), percent=True)),
    ],
)
def test_conditions_that_parse(text: str, expected: Threshold) -> None:
    assert parse_threshold(text) == expected


@pytest.mark.parametrize("text", ["> lots", "5%%", ">-1", "5", ">1.5", ">", "", "=>1", "==1", ">1e2", ">101%", 5, None])
def test_conditions_that_do_not_parse(text: object) -> None:
    with pytest.raises(ValueError):
        parse_threshold(text)


def test_a_condition_prints_as_written() -> None:
    assert [str(parse_threshold(t)) for t in [">0", ">= 10", ">1%", ">0.005%", ">1.50%"]] == [
        ">0",
        ">=10",
        ">1%",
        ">0.005%",
        ">1.5%",
    ]


def test_percentages_are_exact_at_the_limit() -> None:
    over_one_percent = parse_threshold(">1%")
    assert not over_one_percent.holds(1, 100)
    assert not over_one_percent.holds(3, 300)  # 3/300*100 is 1.0000000000000002 in floating point
    assert over_one_percent.holds(2, 101)
    assert parse_threshold(">=1%").holds(3, 300)


def test_a_percentage_of_no_rows_is_zero_never_a_division_by_zero() -> None:
    assert share(0, 0) == 0
    assert share(2, 0) == 100  # a custom query returning rows next to an empty table
    assert not parse_threshold(">0%").holds(0, 0)
    assert parse_threshold("=0%").holds(0, 0)


def test_a_percentage_needs_the_rows_checked() -> None:
    with pytest.raises(ValueError, match="rows checked were not counted"):
        parse_threshold(">1%").holds(1, None)


def test_percent_text() -> None:
    assert [percent_text(share(*n)) for n in [(3, 250), (1, 3), (1, 1_000_000), (0, 5), (5, 5)]] == [
        "1.2%",
        "33.33%",
        "0.0001%",
        "0%",
        "100%",
    ]


def test_error_if_is_tried_before_warn_if() -> None:
    error_if, warn_if = parse_threshold(">1%"), parse_threshold(">0")
    assert verdict(0, 100, error_if, warn_if) is None
    assert verdict(1, 100, error_if, warn_if) == ("warn", warn_if)
    assert verdict(2, 100, error_if, warn_if) == ("error", error_if)
    assert verdict(2, 100, None, warn_if) == ("warn", warn_if)  # no error_if: never an error
    assert verdict(0, 0, parse_threshold("=0"), None) == ("error", parse_threshold("=0"))  # "expect rows"


def _checks(tmp_path: Path, **check: object) -> CheckSpec:
    doc = {"project": "p", "checks": [{"kind": "not_null", "table": "t", "columns": ["a"], **check}]}
    return parse_project(doc, tmp_path / "p", tmp_path / "p" / "project.yml").checks[0]


def test_severity_alone_means_any_failing_row(tmp_path: Path) -> None:
    assert _checks(tmp_path).conditions() == (ANY_FAILING, None)
    warn = _checks(tmp_path, severity="warn")
    assert warn.conditions() == (None, ANY_FAILING) and not warn.has_conditions


def test_conditions_set_the_severity_of_a_pass(tmp_path: Path) -> None:
    only_warn = _checks(tmp_path, warn_if=">5")
    assert only_warn.severity is Severity.WARN and only_warn.conditions() == (None, parse_threshold(">5"))
    both = _checks(tmp_path, warn_if=">0", error_if=">1%")
    assert both.severity is Severity.ERROR and both.conditions() == (parse_threshold(">1%"), ANY_FAILING)


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ({"error_if": "> lots"}, "checks[0].error_if: expected a condition on the failing rows such as"),
        ({"warn_if": "5%%"}, "checks[0].warn_if: expected a condition on the failing rows such as"),
        ({"error_if": ">-1"}, "got '>-1'"),
        ({"error_if": ">150%"}, "checks[0].error_if: expected a percentage from 0 to 100, got '>150%'"),
        ({"error_if": 5}, "checks[0].error_if: expected a condition on the failing rows such as"),
        (
            {"warn_if": ">0", "severity": "warn"},
            "checks[0]: severity cannot be combined with error_if or warn_if",
        ),
        (
            {"kind": "row_count", "table": "t", "min": 1, "error_if": ">1%"},
            "checks[0].error_if: a percentage needs rows to count, and a row_count check has one verdict",
        ),
        (
            {"kind": "custom_sql", "file": "sql/c.sql", "warn_if": ">1%"},
            "checks[0].warn_if: a percentage is of the rows of the check's table: add table:",
        ),
    ],
)
def test_bad_conditions_are_one_line_naming_the_key(check: dict, expected: str, tmp_path: Path) -> None:
    if "kind" not in check:
        check = {"kind": "not_null", "table": "t", "columns": ["a"], **check}
    doc = {"project": "p", "checks": [check]}
    with pytest.raises(ConfigError) as caught:
        parse_project(doc, tmp_path / "p", tmp_path / "p" / "project.yml")
    message = str(caught.value)
    assert expected in message
    assert message.count("\n") == 0


def test_a_relationships_check_needs_its_to_table_loaded_first(tmp_path: Path) -> None:
    def table(name: str) -> dict:
        return {"target": name, "source": {"connection": "warehouse", "table": "x"}, "strategy": "replace"}

    check = {"kind": "relationships", "table": "fact", "column": "customer_id", "to": "dim", "field": "id"}
    doc = {"project": "p", "tables": [table("fact"), table("dim")], "checks": [check]}
    with pytest.raises(ConfigError, match=r"checks\[0\]\.to: dim loads after fact.*list dim before fact"):
        parse_project(doc, tmp_path / "p", tmp_path / "p" / "project.yml")
    doc["tables"] = [table("dim"), table("fact")]
    spec = parse_project(doc, tmp_path / "p", tmp_path / "p" / "project.yml").checks[0]
    assert (spec.name, spec.options["to"].name, spec.options["field"]) == ("relationships_fact", "dim", "id")
