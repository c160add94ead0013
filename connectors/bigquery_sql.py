"""BigQuery SQL text: backtick quoting, ``:name`` -> ``@name``, typed parameters, read and load statements.

Pure functions (no driver import), so the SQL the BigQuery connector sends is unit-tested on its own.

Values are always query parameters, never SQL text. Dates and datetimes are sent as STRING
parameters in canonical form ("2024-01-31" at midnight, else "2024-01-31 10:00:00[.ffffff]", with
"+00:00" when aware): GoogleSQL coerces a STRING parameter to the DATE, DATETIME or TIMESTAMP it is
compared with, so one window works whatever the cursor column's type (a naive value compared with
a TIMESTAMP column is read as UTC). A DATETIME or TIMESTAMP parameter would not: BigQuery has no
implicit coercion between TIMESTAMP and DATETIME.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connectors.target import DeleteByKeys, DeleteWindow, EmptyTable, InsertFromStage, Operation
from utilities.errors import ConfigError, FatalError

_IDENT_START = re.compile(r"[A-Za-z_]")
_WORD = re.compile(r"\w+")
_TRIPLE = ("'''", '"""')


@dataclass(frozen=True)
class Parameter:
    """One named query parameter: ``@name`` of GoogleSQL ``kind`` (STRING, INT64, ...)."""

    name: str
    kind: str
    value: Any


@dataclass(frozen=True)
class Statement:
    """SQL text with ``@name`` placeholders and the parameters it uses."""

    sql: str
    parameters: tuple[Parameter, ...] = ()

    def describe(self) -> str:
        """The SQL and its bound values, for ``--dry-run``."""
        shown = ", ".join(f"{p.name}={p.value!r} ({p.kind})" for p in self.parameters)
        return f"{self.sql}\n-- bound: {shown or '(none)'}"


# -- identifiers ------------------------------------------------------------------------------


def quote(identifier: str) -> str:
    """```identifier``` for GoogleSQL; rejects names that would need escaping (they come from config)."""
    if not identifier or any(ch in identifier for ch in "`\\\n\r"):
        raise ConfigError(f"{identifier!r} is not a usable BigQuery name (backtick, backslash or line break)")
    return f"`{identifier}`"


def table_path(project: str, dataset: str, table: str) -> str:
    """```project`.`dataset`.`table```."""
    return ".".join(quote(part) for part in (project, dataset, table))


# -- parameters -------------------------------------------------------------------------------


def parameter(name: str, value: Any) -> Parameter:
    """A typed parameter for ``value`` (see the module docstring for dates)."""
    if value is None:
        return Parameter(name, "STRING", None)
    if isinstance(value, bool):
        return Parameter(name, "BOOL", value)
    if isinstance(value, int):
        return Parameter(name, "INT64", value)
    if isinstance(value, float):
        return Parameter(name, "FLOAT64", value)
    if isinstance(value, Decimal):
        return Parameter(name, "NUMERIC" if _fits_numeric(value) else "BIGNUMERIC", value)
    if isinstance(value, datetime | date):
        return Parameter(name, "STRING", canonical_text(value))
    return Parameter(name, "STRING", str(value))


def canonical_text(value: date | datetime) -> str:
    """GoogleSQL's canonical text of a date or datetime, which coerces to DATE, DATETIME and TIMESTAMP."""
    if not isinstance(value, datetime):
        return value.isoformat()
    if value.tzinfo is not None:
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None).isoformat(sep=" ", timespec=_timespec(utc)) + "+00:00"
    if value == datetime(value.year, value.month, value.day):
        return value.date().isoformat()
    return value.isoformat(sep=" ", timespec=_timespec(value))


def _timespec(value: datetime) -> str:
    return "microseconds" if value.microsecond else "seconds"


def _fits_numeric(value: Decimal) -> bool:
    """NUMERIC holds 29 digits before the point and 9 after."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        return False
    return -exponent <= 9 and len(digits) + exponent <= 29


# -- the project's SQL files ------------------------------------------------------------------


def prepare_query(sql: str) -> tuple[str, list[str]]:
    """The project's query as GoogleSQL: comments removed, ``:name`` turned into ``@name``, trailing
    semicolons dropped; returns it with the parameter names it uses (``:name`` and ``@name`` alike).

    Quotes are respected: '...', "...", triple-quoted strings (with backslash escapes) and
    `identifiers` are copied as they are; ``--``, ``#`` and ``/* */`` comments are removed.
    """
    out: list[str] = []
    names: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            end = _string_end(sql, i)
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end == -1 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
            out.append(" ")
        elif ch in ":@" and _starts_parameter(sql, i):
            name = _WORD.match(sql, i + 1)
            assert name is not None
            names.append(name.group(0))
            out.append("@" + name.group(0))
            i = name.end()
        else:
            out.append(ch)
            i += 1
    text = "".join(out).strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text, list(dict.fromkeys(names))


def _starts_parameter(sql: str, i: int) -> bool:
    """``:name`` or ``@name`` here, not ``::``, ``@@system_variable`` or ``a:b`` inside a word."""
    before = sql[i - 1] if i > 0 else " "
    after = sql[i + 1] if i + 1 < len(sql) else ""
    return bool(_IDENT_START.match(after)) and not (before.isalnum() or before in "_:@")


def _string_end(sql: str, start: int) -> int:
    """The index just after the string or quoted identifier opening at ``start``."""
    for triple in _TRIPLE:
        if sql.startswith(triple, start):
            end = sql.find(triple, start + 3)
            return len(sql) if end == -1 else end + 3
    quote_char = sql[start]
    i = start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
            continue
        if sql[i] == quote_char:
            return i + 1
        i += 1
    return len(sql)


def bind(names: Sequence[str], values: Mapping[str, Any], where: str) -> list[Parameter]:
    """The parameters ``names`` with their ``values``; FatalError naming an unknown one."""
    missing = [name for name in names if name not in values]
    if missing:
        known = ", ".join(f":{k}" for k in sorted(values))
        raise FatalError(f"{where}: unknown parameter(s) {', '.join(missing)} (available: {known})")
    return [parameter(name, values[name]) for name in names]


# -- reading ----------------------------------------------------------------------------------


def window_condition(column: str, start: Any, end: Any) -> tuple[str, list[Parameter]]:
    """``column > @window_start [AND column <= @window_end]`` with its parameters."""
    condition = f"{column} > @window_start"
    params = [parameter("window_start", start)]
    if end is not None:
        condition += f" AND {column} <= @window_end"
        params.append(parameter("window_end", end))
    return condition, params


def select_query(
    query: str, parameters: Sequence[Parameter], cursor: str | None, window: tuple[Any, Any] | None
) -> Statement:
    """The project's prepared query, wrapped in the window predicate when ``window`` is given."""
    if window is None or cursor is None:
        return Statement(query, tuple(parameters))
    condition, extra = window_condition(f"src.{quote(cursor)}", *window)
    return Statement(f"SELECT * FROM (\n{query}\n) AS src\nWHERE {condition}", (*parameters, *extra))


def select_table(path: str, cursor: str | None, window: tuple[Any, Any] | None) -> Statement:
    """``SELECT *`` from a table path, windowed on ``cursor`` when ``window`` is given."""
    if window is None or cursor is None:
        return Statement(f"SELECT * FROM {path}")
    condition, params = window_condition(quote(cursor), *window)
    return Statement(f"SELECT * FROM {path}\nWHERE {condition}", tuple(params))


# -- loading ----------------------------------------------------------------------------------


def operation_statement(op: Operation, target: str, stage: str, columns: Sequence[str]) -> Statement:
    """One operation that changes the target, as GoogleSQL (column names already in the target's spelling).

    Emptying is ``DELETE ... WHERE TRUE`` (a DML statement, so it rolls back with the transaction);
    the window's values are query parameters; a delete by key keeps the rows whose keys are not staged.
    """
    if isinstance(op, EmptyTable):
        return Statement(f"DELETE FROM {target} WHERE TRUE")
    if isinstance(op, DeleteWindow):
        condition, params = window_condition(quote(op.bounds.cursor), op.bounds.start, op.bounds.end)
        return Statement(f"DELETE FROM {target} WHERE {condition}", tuple(params))
    if isinstance(op, DeleteByKeys):
        match = " AND ".join(f"stage.{quote(k)} = target.{quote(k)}" for k in op.keys)
        return Statement(f"DELETE FROM {target} AS target WHERE EXISTS (SELECT 1 FROM {stage} AS stage WHERE {match})")
    if isinstance(op, InsertFromStage):
        column_list = ", ".join(quote(c) for c in columns)
        return Statement(f"INSERT INTO {target} ({column_list}) SELECT {column_list} FROM {stage}")
    raise FatalError(f"load into {target}: BigQuery does not run {type(op).__name__} here")


def transaction(statements: Sequence[Statement]) -> Statement:
    """One multi-statement script: ``BEGIN TRANSACTION``, the statements, ``COMMIT TRANSACTION``.
    Either all of it commits or none of it does."""
    parts = ["BEGIN TRANSACTION", *(s.sql for s in statements), "COMMIT TRANSACTION"]
    params = {p.name: p for s in statements for p in s.parameters}
    return Statement(";\n".join(parts) + ";", tuple(params.values()))


def null_keys_query(stage: str, keys: Sequence[str]) -> Statement:
    """How many staged rows have a NULL in one of ``keys``."""
    condition = " OR ".join(f"{quote(k)} IS NULL" for k in keys)
    return Statement(f"SELECT COUNT(*) AS n FROM {stage} WHERE {condition}")


def duplicate_keys_query(stage: str, keys: Sequence[str]) -> Statement:
    """Up to three keys that are staged more than once."""
    key_list = ", ".join(quote(k) for k in keys)
    return Statement(
        f"SELECT {key_list} FROM {stage} GROUP BY {key_list} HAVING COUNT(*) > 1 ORDER BY {key_list} LIMIT 3"
    )
