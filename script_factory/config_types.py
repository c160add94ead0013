"""The scalar keys of project.yml: each type validates a value, says what it expected, and gives its JSON Schema.

A validator raises ``expected(...)`` or ``problem(...)``: config_messages.py prints that text after
the file and the key path, as it is. Validators that need the rest of the file (the declared
connections, the folder's name) read them from pydantic's validation context.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from pydantic import PlainValidator, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

from connectors.base import TableName
from data_quality_checks.thresholds import THRESHOLD_PATTERN, Threshold, parse_threshold
from script_factory.config_specs import IDENTIFIER, NAME
from utilities.dates import DURATION_PATTERN, ISO_DATETIME_PATTERN, parse_duration, parse_iso_datetime, zone

_TABLE = re.compile(rf"^{IDENTIFIER.pattern[1:-1]}(?:\.{IDENTIFIER.pattern[1:-1]})?$")


def show(value: Any) -> str:
    """A bad value as an error message shows it (a mapping or a list by its kind only)."""
    return type(value).__name__ if isinstance(value, (dict, list)) else repr(value)


def problem(text: str) -> PydanticCustomError:
    """An error whose text config_messages.py prints as it is, after the file and the key."""
    return PydanticCustomError("config", "{text}", {"text": text})


def expected(what: str, got: Any = ...) -> PydanticCustomError:
    return problem(f"expected {what}" + ("" if got is ... else f", got {show(got)}"))


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise expected("a non-empty string", value)
    return value.strip()


def _description(value: Any) -> str:
    if not isinstance(value, str):
        raise expected("text", value)
    return value.strip()


def _name(value: Any) -> str:
    text = _text(value)
    if not NAME.match(text):
        raise expected("a lower-case name of letters, digits and '_' starting with a letter", text)
    return text


def _identifier(value: Any) -> str:
    text = _text(value)
    if not IDENTIFIER.match(text):
        raise expected("a column name of letters, digits and '_' (at most 63 characters)", text)
    return text


def _table(value: Any) -> TableName:
    text = _text(value)
    if not _TABLE.match(text):
        raise expected("a table name such as dim_customer or analytics.dim_customer", text)
    schema, _, name = text.rpartition(".")
    return TableName(name, schema or None)


def _relative_file(value: Any) -> str:
    text = _text(value)
    for path in (PurePosixPath(text), PureWindowsPath(text)):  # the same project runs on both
        if path.is_absolute() or path.drive or ".." in path.parts:
            raise expected("a path inside the project (no absolute path, no '..')", text)
    return text.replace("\\", "/")


def _whole(minimum: int) -> PlainValidator:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise expected(f"a whole number >= {minimum}", value)
        return value

    return PlainValidator(check)


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise expected("a number >= 0", value)
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise expected("true or false", value)
    return value


def _moment(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):  # YAML reads an unquoted 2024-01-01 as a date
        return datetime(value.year, value.month, value.day)
    try:
        return parse_iso_datetime(_text(value))
    except (ValueError, PydanticCustomError):
        raise expected("an ISO date or datetime such as 2024-01-01", value) from None


def _duration(value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError:
        raise expected("a duration such as 0, 30m, 2h or 1d", value) from None


def _time_zone(value: Any) -> str:
    text = _text(value)
    try:
        zone(text)
    except ValueError as exc:
        raise problem(str(exc)) from None
    return text


def _cron(value: Any) -> str:
    from croniter import croniter  # only when a project has a schedule

    if not isinstance(value, str) or not croniter.is_valid(value.strip()):
        raise expected('a cron expression such as "0 6 * * *"', value)
    return value.strip()


def _email_address(value: Any) -> str:
    text = _text(value)
    if "@" not in text:
        raise expected("an e-mail address such as data-team@example.com", text)
    return text


def _condition(value: Any) -> Threshold:
    try:
        return parse_threshold(value)
    except ValueError as exc:
        raise expected(str(exc), value) from None


WHEN = ("failure", "warning", "success", "recovered")


def _when(value: Any) -> str:
    if value not in WHEN:
        raise expected("failure, warning, success or recovered", value)
    return str(value)


def _sqlite_url(value: Any) -> str:
    text = _text(value)
    if not text.startswith("sqlite:///"):  # the message names ETL_CONN_<NAME>: see config_messages.py
        raise PydanticCustomError("sqlite_default", "{scheme}", {"scheme": text.partition(":")[0]})
    return text


def _connection(value: Any, info: ValidationInfo) -> str:
    name = _name(value)
    declared = (info.context or {}).get("connections")
    if declared is not None and name not in declared:
        raise problem(
            f"unknown connection {name!r} (declared: {', '.join(sorted(declared))}); add it under connections:"
        )
    return name


def _project_name(value: Any, info: ValidationInfo) -> str:
    name = _name(value)
    folder = (info.context or {}).get("folder")
    if folder is not None and name != folder:
        raise problem(f"{name!r} must equal the folder name {folder!r}")
    return name


def _string(**schema: Any) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", **schema})


Text = Annotated[str, PlainValidator(_text), _string(minLength=1)]
Description = Annotated[str, PlainValidator(_description), _string()]
Name = Annotated[str, PlainValidator(_name), _string(pattern=NAME.pattern)]
Identifier = Annotated[str, PlainValidator(_identifier), _string(pattern=IDENTIFIER.pattern)]
Table = Annotated[TableName, PlainValidator(_table), _string(pattern=_TABLE.pattern)]
_INSIDE = r"^(?![\\/]|[A-Za-z]:)(?!(.*[\\/])?\.\.([\\/]|$))"  # not absolute, no '..' (Windows paths too)
RelativeFile = Annotated[str, PlainValidator(_relative_file), _string(minLength=1, pattern=_INSIDE)]
PositiveInt = Annotated[int, _whole(1), WithJsonSchema({"type": "integer", "minimum": 1})]
Bound = Annotated[int, _whole(0), WithJsonSchema({"type": "integer", "minimum": 0})]
Seconds = Annotated[float, PlainValidator(_seconds), WithJsonSchema({"type": "number", "minimum": 0})]
Flag = Annotated[bool, PlainValidator(_flag), WithJsonSchema({"type": "boolean"})]
Moment = Annotated[datetime, PlainValidator(_moment), _string(pattern=ISO_DATETIME_PATTERN, examples=["2024-01-01"])]
Duration = Annotated[
    timedelta,
    PlainValidator(_duration),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string", "pattern": DURATION_PATTERN}]}),
]
TimeZone = Annotated[str, PlainValidator(_time_zone), _string(minLength=1, examples=["UTC", "Europe/Paris"])]
Cron = Annotated[str, PlainValidator(_cron), _string(minLength=1, examples=["0 6 * * *"])]
EmailAddress = Annotated[str, PlainValidator(_email_address), _string(pattern="@")]
Condition = Annotated[
    Threshold, PlainValidator(_condition), _string(pattern=THRESHOLD_PATTERN, examples=[">0", ">=10", ">1%"])
]
When = Annotated[str, PlainValidator(_when), WithJsonSchema({"enum": list(WHEN)})]
SqliteUrl = Annotated[str, PlainValidator(_sqlite_url), _string(pattern="^sqlite:///")]
ConnectionName = Annotated[str, PlainValidator(_connection), _string(pattern=NAME.pattern)]
ProjectName = Annotated[str, PlainValidator(_project_name), _string(pattern=NAME.pattern)]
