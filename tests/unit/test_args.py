"""The command line: arguments -> RunRequest, and one clear line for every bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from script_factory.request import LoadType
from script_runner import parse_request
from utilities.errors import ConfigError


def test_defaults_are_incremental_without_dates() -> None:
    request, _ = parse_request(["--project", "sales_demo"])
    assert request is not None
    assert (request.project, request.load_type, request.start_date, request.end_date) == (
        "sales_demo",
        LoadType.INCREMENTAL,
        None,
        None,
    )
    assert not request.dry_run


def test_full_load_with_dates_and_flags() -> None:
    request, _ = parse_request(
        [
            "--project",
            "p",
            "--load-type",
            "f",
            "--start-date",
            "2026-01-01",
            "--end-date",
            "2026-01-31T08:30:00",
            "--env",
            "prod",
            "--dry-run",
        ]
    )
    assert request is not None
    assert request.load_type is LoadType.FULL
    assert request.start_date == datetime(2026, 1, 1)
    assert request.end_date == datetime(2026, 1, 31, 8, 30)
    assert (request.env_name, request.dry_run) == ("prod", True)


def test_dates_keep_their_offset() -> None:
    request, _ = parse_request(
        ["--project", "p", "--start-date", "2026-01-01T00:00:00+02:00", "--end-date", "2026-01-02T00:00:00Z"]
    )
    assert request is not None
    assert request.start_date == datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    assert request.end_date.tzinfo == UTC


def test_list_needs_no_project() -> None:
    request, args = parse_request(["--list"])
    assert request is None and args.list


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--project", "p", "--load-type", "X"], "'X' is not a load type (expected I for incremental or F for full)"),
        (["--project", "p", "--start-date", "2026-13-01"], "'2026-13-01' is not an ISO date or datetime"),
        (["--project", "p", "--end-date", "yesterday"], "'yesterday' is not an ISO date or datetime"),
        # Python's fromisoformat alone reads any character as the date/time separator: this would be 02:00
        (["--project", "p", "--start-date", "2026-01-31+02:00"], "'2026-01-31+02:00' is not an ISO date or datetime"),
        (["--project", "p", "--start-date", "2026-1-31"], "'2026-1-31' is not an ISO date or datetime"),
        (["--project", "p", "--start-date", "2026-02-01", "--end-date", "2026-01-01"], "must be before --end-date"),
        (["--project", "p", "--start-date", "2026-01-01", "--end-date", "2026-01-01"], "must be before --end-date"),
        (["--project", "p", "--start-date", "2026-01-01", "--end-date", "2026-01-02T00:00Z"], "both have a UTC offset"),
        ([], "--project is required"),
        (["--project", "p", "--bogus"], "unrecognized arguments: --bogus"),
        (["--proj", "p"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_are_one_config_error(argv: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_request(argv)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
