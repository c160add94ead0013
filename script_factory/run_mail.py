"""The run's e-mail: whether it is sent (``on:``, ``recovered``, ``repeat_after``), and its HTML part
(status line, rows per table, checks and reconciliation, the masked log tail of a failure).

What the mail needs beyond the run's summary is read from the warehouse after the run: the run's check
results, the previous run's status, and the last mail of the project (``etl_notifications``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from script_factory.report_data import figures
from utilities.files import shown_path

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from script_factory.outcome import RunSummary

TAIL_LINES = 40
PRE = "font-size:12px;background:#f5f5f5;padding:6px;white-space:pre-wrap"


@dataclass(frozen=True)
class RunFacts:
    """What the warehouse says about the run and its project."""

    checks: tuple[Mapping[str, Any], ...] = ()
    previous_status: str | None = None  # the project's run before this one
    last_failure_mail: tuple[str | None, datetime] | None = None  # (fingerprint, sent_at) of the latest mail
    warnings: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        count = sum(1 for c in self.checks if c.get("status") == "fail" and c.get("severity") == "warn")
        object.__setattr__(self, "warnings", count)


def read_facts(conn: Connection, project: str, run_id: int) -> RunFacts:
    from sqlalchemy import desc, inspect, select

    from script_factory import audit

    names = set(inspect(conn).get_table_names())
    d, r, n = audit.etl_dq_results, audit.etl_runs, audit.etl_notifications
    checks: tuple[Mapping[str, Any], ...] = ()
    if "etl_dq_results" in names:
        query = select(d).where(d.c.run_id == run_id).order_by(d.c.result_id)
        checks = tuple(dict(m) for m in conn.execute(query).mappings())
    previous = conn.execute(
        select(r.c.status).where(r.c.project == project, r.c.run_id < run_id).order_by(desc(r.c.run_id)).limit(1)
    ).scalar_one_or_none()
    last = None
    if "etl_notifications" in names:
        row = conn.execute(
            select(n.c.kind, n.c.fingerprint, n.c.sent_at)
            .where(n.c.project == project)
            .order_by(desc(n.c.notification_id))
            .limit(1)
        ).first()
        if row is not None and row[0] == "failure":
            last = (row[1], audit.as_utc(row[2]) or row[2])
    return RunFacts(checks, previous, last)


def fingerprint(error: str | None) -> str:
    """The same failure, whatever its run: the error with numbers left out, hashed."""
    return hashlib.sha256(re.sub(r"\d+", "#", error or "").encode()).hexdigest()[:32]


def mail_kind(
    status: str,
    facts: RunFacts,
    on: Iterable[str],
    error: str | None,
    now: datetime,
    repeat_after: timedelta,
) -> str | None:
    """``failure``, ``recovered``, ``warning``, ``success``, or None when no mail is due.

    A failure identical to the one last mailed (the project failing run after run) is mailed again only
    ``repeat_after`` later. ``recovered``: the first success after a failed run."""
    wanted = set(on)
    if status != "success":
        if "failure" not in wanted:
            return None
        last = facts.last_failure_mail
        if (
            last is not None
            and facts.previous_status == "failed"
            and last[0] == fingerprint(error)
            and now - last[1] < repeat_after
        ):
            return None
        return "failure"
    if facts.previous_status == "failed" and "recovered" in wanted:
        return "recovered"
    if facts.warnings and "warning" in wanted:
        return "warning"
    return "success" if "success" in wanted else None


def status_line(status: str, warnings: int, kind: str | None = None) -> str:
    """``SUCCESS``, ``SUCCESS with 2 warnings``, ``FAILED``; ``RECOVERED: ...`` for a recovery."""
    line = status.upper()
    if status == "success" and warnings:
        line += f" with {warnings} warning{'s' if warnings != 1 else ''}"
    return f"RECOVERED: {line}" if kind == "recovered" else line


def log_tail(path: Path | None, mask: Callable[[str], str], lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of the run's log, masked (none when there is no log file)."""
    if path is None or not path.is_file():
        return []
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 256 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    return [mask(line) for line in text.splitlines()[-lines:]]


def html_body(summary: RunSummary, facts: RunFacts, kind: str | None, tail: list[str], home: Path | None) -> str:
    """The HTML part: a table layout without script or SVG, which mail clients show as it is."""
    status = status_line(summary.status, facts.warnings, kind)
    colour = "#2e7d32" if summary.status == "success" and not facts.warnings else "#c62828"
    if summary.status == "success" and facts.warnings:
        colour = "#e65100"
    cell = 'style="border:1px solid #ddd;padding:3px 6px;text-align:left"'
    parts = [
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#212121">',
        f'<h2 id="status" style="color:{colour};margin:0 0 8px">{escape(summary.project)}: {escape(status)}</h2>',
        f"<p>Run {summary.run_id or '-'}, load type {escape(summary.load_type)}, {summary.outcome.rows:,} rows, "
        f"{summary.seconds:.1f} s, exit code {int(summary.exit_code)}.</p>",
    ]
    if summary.outcome.error:
        parts.append(f'<p id="error" style="color:#c62828">{escape(summary.outcome.error)}</p>')
    tasks = [
        (o.task.name, o.task.target_table or "-", o.status, o.result.rows if o.result else None, o.seconds)
        for o in summary.outcomes
    ]
    parts.append("<h3>Rows per table</h3>")
    parts.append(_table("tables", ("task", "table", "status", "rows", "seconds"), [
        (escape(n), escape(t), escape(s), "-" if r is None else f"{r:,}", f"{sec:.1f}") for n, t, s, r, sec in tasks
    ], cell))  # fmt: skip
    if facts.checks:
        rows = [
            (
                escape(str(c.get("check_name"))),
                escape(str(c.get("table_name") or "-")),
                escape(str(c.get("severity"))),
                escape(str(c.get("status"))),
                "-" if c.get("failing_rows") is None else f"{c['failing_rows']:,}",
                escape(figures(c)),
                escape(str(c.get("detail") or "")),
            )
            for c in facts.checks
        ]
        headers = ("check", "table", "severity", "status", "failing rows", "source / target / difference", "detail")
        parts.append("<h3>Checks and reconciliation</h3>" + _table("checks", headers, rows, cell))
    if tail:
        shown = escape("\n".join(tail))
        parts.append(f'<h3>The last {len(tail)} lines of the log</h3><pre id="log-tail" style="{PRE}">{shown}</pre>')
    if summary.log_file is not None:
        parts.append(f'<p style="color:#757575">Log: {escape(shown_path(summary.log_file, home))}</p>')
    parts.append("</body></html>")
    return "".join(parts)


def _table(table_id: str, headers: Iterable[str], rows: Iterable[Iterable[str]], cell: str) -> str:
    head = "".join(f"<th {cell}>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td {cell}>{v}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}" style="border-collapse:collapse"><tr>{head}</tr>{body}</table>'
