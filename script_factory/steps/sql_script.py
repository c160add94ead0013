"""SQL script steps: aggregations (and any SQL file) run on a connection in one transaction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from script_factory.context import RunContext
from script_factory.task import StepResult
from utilities.sql_text import split_statements, strip_comments


def run_sql_script(ctx: RunContext, *, connection: str, label: str, sql: str) -> StepResult:
    """Run every statement of ``sql`` in one transaction; bind values come from the run context."""
    target = ctx.sql_connector(connection)
    values = ctx.bind_values()
    affected = 0
    with target.translate_errors(label), target.transaction() as conn:
        for statement in split_statements(sql):
            clause, params = bound(statement, values)
            result = conn.execute(clause, params)
            affected += max(result.rowcount or 0, 0)
    return StepResult(rows=affected, message=f"{label}: {affected:,} row(s) affected")


def preview_sql_script(ctx: RunContext, *, connection: str, label: str, sql: str) -> str:
    values = ctx.bind_values()
    shown = []
    for statement in split_statements(sql):
        names = bind_names(strip_comments(statement))  # what text() binds, without importing SQLAlchemy
        params = {k: v for k, v in values.items() if k in names}
        shown.append(statement + ";" + (f"\n-- bound: {params}" if params else ""))
    return "\n".join(shown)


def bound(statement: str, values: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A ``text()`` clause and only the bind values it references."""
    from sqlalchemy import text

    clause = text(strip_comments(statement))
    names = set(clause.compile().params)
    return clause, {k: v for k, v in values.items() if k in names}


#: SQLAlchemy's ``TextClause._bind_params_regex``: ``:name`` not after ``:``, a word character or a backslash, and
#: not followed by ``:`` or a word character (tests/unit/test_startup.py compares the two)
BIND_NAME = re.compile(r"(?<![:\w\x5c]):(\w+)(?![:\w])", re.UNICODE)


def bind_names(text: str) -> set[str]:
    """The bind parameters ``sqlalchemy.text(text)`` has."""
    return set(BIND_NAME.findall(text))
