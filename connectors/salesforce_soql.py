"""SOQL for the Salesforce connector: the validated source options, the query text with strict
literals, and Salesforce values (REST JSON or Bulk API CSV text) turned into Python values.

SOQL has no bind parameters, so nothing from outside is pasted into the query as text: object and
field names must match a strict API-name pattern, and window bounds are rendered only from
``datetime``/``date`` objects by :func:`soql_literal`. The optional ``where`` condition is written
by the project's author in project.yml, like a ``.sql`` file, and is kept in parentheses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from utilities.errors import ConfigError, FatalError

#: Salesforce API names: a letter, then letters, digits and underscores (``Account``, ``ns__Field__c``)
API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
#: warehouse column names the fields are loaded into
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_RELATIONSHIP_DEPTH = 5  # SOQL allows five levels of child-to-parent relationships
SOURCE_KEYS = ("object", "fields", "where", "bulk", "bulk_threshold")
DEFAULT_BULK_THRESHOLD = 100_000

CURSOR_TYPES = {"datetime", "date"}
COMPOUND_TYPES = {"address", "location"}
INTEGER_TYPES = {"int", "long"}
DECIMAL_TYPES = {"double", "currency", "percent"}


@dataclass(frozen=True)
class FieldSpec:
    """One selected field: its path (``("Account", "Name")``) and the column it is loaded into."""

    path: tuple[str, ...]
    column: str

    @property
    def soql(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class SalesforceSource:
    """A table's ``source:`` block for a Salesforce connection, validated."""

    object: str
    fields: tuple[FieldSpec, ...]
    where: str | None = None
    bulk: bool | str = False  # True, False or "auto"
    bulk_threshold: int = DEFAULT_BULK_THRESHOLD

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.fields]

    def cursor_field(self, cursor: str) -> FieldSpec:
        """The field loaded into column ``cursor`` (case-insensitive); ConfigError if none is."""
        for spec in self.fields:
            if spec.column.lower() == cursor.lower():
                return spec
        raise ConfigError(
            f"the cursor {cursor!r} is not one of the columns of the Salesforce source "
            f"({', '.join(self.columns)}); add its field to fields:"
        )


def parse_source(options: Mapping[str, Any], where: str) -> SalesforceSource:
    """Validate a ``source:`` block (``object``, ``fields``, ``where``, ``bulk``, ``bulk_threshold``)."""
    unknown = set(options) - set(SOURCE_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
            f"(a Salesforce source takes: {', '.join(SOURCE_KEYS)})"
        )
    name = options.get("object")
    if not isinstance(name, str) or not API_NAME.match(name):
        raise ConfigError(f"{where}.object: expected a Salesforce object API name such as Account, got {name!r}")
    fields = _fields(options.get("fields"), f"{where}.fields")
    condition = options.get("where")
    if condition is not None and (not isinstance(condition, str) or not condition.strip()):
        raise ConfigError(f"{where}.where: expected a SOQL condition such as IsDeleted = false, got {condition!r}")
    bulk = options.get("bulk", False)
    if bulk not in (True, False, "auto"):
        raise ConfigError(f"{where}.bulk: expected true, false or auto, got {bulk!r}")
    threshold = options.get("bulk_threshold", DEFAULT_BULK_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise ConfigError(f"{where}.bulk_threshold: expected a whole number of rows >= 0, got {threshold!r}")
    if "bulk_threshold" in options and bulk != "auto":
        raise ConfigError(f"{where}.bulk_threshold: only used with bulk: auto")
    return SalesforceSource(name, fields, condition.strip() if condition else None, bulk, threshold)


def _fields(value: Any, where: str) -> tuple[FieldSpec, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a list of field names such as [Id, Name, Account.Name]")
    specs = [_field(item, f"{where}[{i}]") for i, item in enumerate(value)]
    seen: set[str] = set()
    for spec in specs:
        if spec.column.lower() in seen:
            raise ConfigError(f"{where}: column {spec.column!r} appears twice (give one of them another name)")
        seen.add(spec.column.lower())
    return tuple(specs)


def _field(item: Any, where: str) -> FieldSpec:
    """``Name``, ``Account.Name`` (column ``Account_Name``) or ``{Account.Name: account_name}``."""
    column: Any = None
    if isinstance(item, dict) and len(item) == 1:
        item, column = next(iter(item.items()))
    if not isinstance(item, str):
        raise ConfigError(f"{where}: expected a field name, or {{Field: column_name}}, got {item!r}")
    path = tuple(item.split("."))
    if len(path) > MAX_RELATIONSHIP_DEPTH + 1 or not all(API_NAME.match(part) for part in path):
        raise ConfigError(
            f"{where}: {item!r} is not a Salesforce field name (letters, digits and '_'; "
            f"relationships as Account.Name, at most {MAX_RELATIONSHIP_DEPTH} levels)"
        )
    column = "_".join(path) if column is None else column
    if not isinstance(column, str) or not COLUMN_NAME.match(column):
        raise ConfigError(f"{where}: column name {column!r} must be letters, digits and '_' (at most 63)")
    return FieldSpec(path, column)


# -- the query text -------------------------------------------------------------------------------


def soql_literal(value: Any, as_date: bool = False) -> str:
    """A SOQL date or dateTime literal, from a ``datetime`` or ``date`` object only.

    Datetimes are rendered in UTC as ``YYYY-MM-DDTHH:MM:SSZ``, with milliseconds when they are not
    zero (Salesforce keeps milliseconds; finer digits are dropped, which is exact for its values).
    A naive datetime is taken as UTC. ``as_date`` renders ``YYYY-MM-DD`` for a date field.
    """
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if as_date:
            return _date_text(moment.date() if value.tzinfo is not None else value.date())
        text = f"{_date_text(moment.date())}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        if moment.microsecond // 1000:
            text += f".{moment.microsecond // 1000:03d}"
        return text + "Z"
    if isinstance(value, date):
        return _date_text(value) if as_date else f"{_date_text(value)}T00:00:00Z"
    raise FatalError(f"a Salesforce window bound must be a date or datetime, got {type(value).__name__} {value!r}")


def _date_text(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


@dataclass(frozen=True)
class Window:
    """``start < cursor <= end`` on one field; ``end`` None means no upper bound."""

    cursor: str
    start: Any
    end: Any
    as_date: bool = False

    def conditions(self) -> list[str]:
        parts = [f"{self.cursor} > {soql_literal(self.start, self.as_date)}"]
        if self.end is not None:
            parts.append(f"{self.cursor} <= {soql_literal(self.end, self.as_date)}")
        return parts


def build_soql(obj: str, paths: list[str], condition: str | None, window: Window | None, order_by: str | None) -> str:
    """``SELECT paths FROM obj [WHERE (condition) AND window] [ORDER BY order_by]``."""
    conditions = [f"({condition})"] if condition else []
    if window is not None:
        conditions += window.conditions()
    text = f"SELECT {', '.join(paths)} FROM {obj}"
    if conditions:
        text += " WHERE " + " AND ".join(conditions)
    if order_by:
        text += f" ORDER BY {order_by}"
    return text


def count_soql(obj: str, condition: str | None, window: Window | None) -> str:
    """``SELECT COUNT() FROM obj [WHERE ...]``: how many rows a read would return."""
    return build_soql(obj, ["COUNT()"], condition, window, None)


# -- values ---------------------------------------------------------------------------------------


def parse_datetime(text: str) -> datetime:
    """``2024-01-02T10:00:00.000+0000`` (REST) or ``...000Z`` (Bulk CSV) -> an aware datetime."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _parse_boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"{text!r} is not true or false")
    return lowered == "true"


def _parse_decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None


_FROM_TEXT: dict[str, Callable[[str], Any]] = {
    "datetime": parse_datetime,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "boolean": _parse_boolean,
    **{name: int for name in INTEGER_TYPES},
    **{name: _parse_decimal for name in DECIMAL_TYPES},
}


def json_converter(sf_type: str) -> Callable[[Any], Any] | None:
    """How a REST (JSON) value of ``sf_type`` becomes a Python value; None keeps it as it is.

    JSON already carries numbers (floats as Decimal) and booleans; dates and times are strings.
    """
    if sf_type in ("datetime", "date", "time"):
        parse = _FROM_TEXT[sf_type]
        return lambda value: parse(value) if isinstance(value, str) else value
    return None


def csv_converter(sf_type: str) -> Callable[[str], Any]:
    """How a Bulk API CSV cell of ``sf_type`` becomes a Python value (an empty cell is NULL)."""
    parse = _FROM_TEXT.get(sf_type)

    def convert(text: str) -> Any:
        if text == "":
            return None
        return parse(text) if parse is not None else text

    return convert
