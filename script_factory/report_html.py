"""The HTML run report: one self-contained file (inline CSS and SVG, no script, nothing fetched), written
atomically, from :mod:`script_factory.report_data`. Every value from the audit tables is escaped, and
the texts that may hold one (errors, details) were masked when read."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from script_factory import report_charts as charts
from script_factory.report_data import LATEST, ReportData, figures

if TYPE_CHECKING:
    from script_factory.settings import Settings

CHART_POINTS = 300  # points per series chart before they are drawn per day
CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:8px;
color:#212121;background:#fff}
h1{font-size:20px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px;margin:14px 0 4px}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:13px;margin:4px 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}th{background:#f5f5f5}
td.n{text-align:right;font-variant-numeric:tabular-nums}svg.chart{width:100%;max-width:640px;height:auto;display:block}
.ok{color:#2e7d32}.bad{color:#c62828;font-weight:600}.warn{color:#e65100;font-weight:600}.muted{color:#757575}
.cards{display:flex;flex-wrap:wrap;gap:8px}
.card{border:1px solid #ddd;border-radius:6px;padding:6px 10px;min-width:110px}
.card b{display:block;font-size:18px}.err{white-space:pre-wrap;word-break:break-word;max-width:700px;min-width:160px}
"""


def render(data: ReportData) -> str:
    """The whole report as one HTML document."""
    title = f"ETL report: {data.project or 'all projects'}"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">The last {data.days} days ({data.since:%Y-%m-%d %H:%M} to {data.generated:%Y-%m-%d %H:%M} '
        f"UTC), warehouse {escape(data.database or '-')}.</p>",
        _cards(data),
        _timelines(data),
        _runs(data),
        _failures(data),
        _tables(data),
        _checks(data),
        _state(data),
        _profiles(data),
        _backfill(data),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )


def write_atomically(path: Path, text: str) -> None:
    """``text`` into ``path`` through ``path.partial`` renamed over it: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def make_report(settings: Settings, project: str | None, days: int, out: Path | None, warehouse: str) -> Path:
    """Read the audit tables in connection ``warehouse`` (of ``project``, or of every project), write the
    report to ``out`` (default metadata/output/reports/<project|all>_<stamp>.html) and return its path."""
    from script_factory.report_data import read_report
    from utilities.dates import utc_now
    from utilities.files import stamped_path

    engine, database = _warehouse_engine(settings, warehouse)
    try:
        data = read_report(engine, project, days, settings.masker, database)
    finally:
        if engine is not None:
            engine.dispose()
    if out is None:
        folder = settings.paths.output / "reports"
        out = stamped_path(folder, f"{project or 'all'}_{utc_now():%Y%m%d_%H%M%S}", ".html")
    write_atomically(out, render(data))
    return out


def _warehouse_engine(settings: Settings, name: str) -> tuple[Any, str]:
    """An engine on the warehouse, or None when its SQLite file does not exist yet (nothing ran)."""
    from connectors import open_connector
    from script_factory.settings import DEFAULT_WAREHOUSE_URL, WAREHOUSE_CONNECTION
    from utilities.secrets import Secret

    url = settings.connection_url(name) or (Secret(DEFAULT_WAREHOUSE_URL) if name == WAREHOUSE_CONNECTION else None)
    if url is None:
        from utilities.errors import ConfigError

        raise ConfigError(f"--report: the warehouse connection {name!r} has no URL; set ETL_CONN_{name.upper()}")
    connector = open_connector(name, url, settings.paths.home, settings.variables)
    path = getattr(connector, "path", None)
    if path is not None and not path.is_file():
        return None, str(path)
    return connector.engine, str(getattr(connector, "database_name", name))  # type: ignore[attr-defined]


# -- sections ---------------------------------------------------------------------------------------


def _table(table_id: str, headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """A table of already-escaped cells (a cell starting with ``<td`` is used as is)."""
    body = ["<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    if not body:
        return f'<p class="muted" id="{table_id}-empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    table = f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return '<td class="n muted">-</td>'
    return f'<td class="n">{value:,.{digits}f}</td>'


def _t(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


def _status(status: str) -> str:
    css = {"success": "ok", "pass": "ok", "failed": "bad", "fail": "bad"}.get(status, "warn")
    return f'<span class="{css}">{escape(status)}</span>'


def _cards(data: ReportData) -> str:
    failed = sum(1 for r in data.runs if r.status == "failed")
    rows = sum(r.rows or 0 for r in data.runs)
    warnings = sum(c["count"] for c in data.check_totals if c["status"] == "fail" and c["severity"] == "warn")
    cards = [
        ("runs", f"{data.total_runs:,}"),
        ("failed", f"{failed:,}"),
        ("rows loaded", f"{rows:,}"),
        ("check warnings", f"{warnings:,}"),
        ("volume anomalies", f"{len(data.anomalies):,}"),
    ]
    inner = "".join(f'<div class="card">{escape(label)}<b>{value}</b></div>' for label, value in cards)
    return f'<div class="cards" id="summary">{inner}</div>'


def _timelines(data: ReportData) -> str:
    if not data.runs:
        return '<h2>Runs</h2><p class="muted" id="no-runs">No run in this period.</p>'
    out = ["<h2>Run timeline</h2>", '<p class="muted">Green: success, red: failed. Upper lane: full loads (F).</p>']
    projects = sorted({r.project for r in data.runs})
    for project in projects:
        marks = [
            (r.started, r.status, r.load_type, r.run_id, _run_tip(r.run_id, r.status, r.load_type, r.started, r.rows))
            for r in data.runs
            if r.project == project
        ]
        first, last = marks[0][0], marks[-1][0]
        pad = max((last - first) * 0.03, timedelta(minutes=1))
        out.append(f"<h3>{escape(project)}</h3>" + charts.timeline(project, marks, first - pad, last + pad))
    return "".join(out)


def _run_tip(run_id: int, status: str, load_type: str, at: datetime, rows: int | None) -> str:
    return f"run {run_id} {status} ({load_type}) {at:%Y-%m-%d %H:%M}, {rows or 0:,} rows"


def _runs(data: ReportData) -> str:
    latest = list(reversed(data.runs))[:LATEST]
    rows = [
        (
            str(r.run_id),
            escape(r.project),
            _status(r.status),
            escape(r.load_type),
            _t(r.started),
            _n(r.seconds, 1),
            _n(r.rows),
        )
        for r in latest
    ]
    shown = f'<p class="muted">The latest {len(latest)} of {data.total_runs:,} runs.</p>' if data.runs else ""
    headers = ("run", "project", "status", "load type", "started (UTC)", "seconds", "rows")
    return "<h2>Latest runs</h2>" + shown + _table("runs", headers, rows, "No run in this period.")


def _failures(data: ReportData) -> str:
    rows = [
        (str(f["run_id"]), escape(f["project"]), _t(f["started"]), escape(f["task"]),
         f'<td class="err">{escape(f["error"])}</td>')
        for f in data.failures
    ]  # fmt: skip
    return "<h2>Latest failures</h2>" + _table(
        "failures", ("run", "project", "started (UTC)", "task", "error"), rows, "No failed run in this period."
    )


def _tables(data: ReportData) -> str:
    if not data.loads:
        return '<h2>Tables</h2><p class="muted" id="tables-empty">No table load in this period.</p>'
    out = ["<h2>Tables: rows and duration per load</h2>"]
    for (project, table), loads in data.loads.items():
        ok = [load for load in loads if load.rows is not None]
        rows = [(load.started, float(load.rows or 0), load.anomaly is not None, _load_tip(load)) for load in ok]
        seconds = [
            (load.started, load.seconds, False, f"run {load.run_id}: {load.seconds:.1f} s")
            for load in loads
            if load.seconds is not None
        ]
        name = f"{project}.{table}" if data.project is None else table
        out.append(
            f"<h3>{escape(name)}</h3>"
            + charts.series(f"rows {name}", charts.daily(rows, CHART_POINTS), "rows")
            + charts.series(f"duration {name}", charts.daily(seconds, CHART_POINTS), "seconds")
        )
    anomalies = [
        (str(a.run_id), escape(a.project), escape(a.table), _t(a.started), escape(a.anomaly or ""))
        for a in data.anomalies[:LATEST]
    ]
    out.append("<h3>Volume anomalies</h3>")
    out.append(_table("anomalies", ("run", "project", "table", "started", "why"), anomalies, "No volume anomaly."))
    return "".join(out)


def _load_tip(load: Any) -> str:
    tip = f"run {load.run_id} {load.started:%Y-%m-%d %H:%M}: {load.rows:,} rows"
    return tip + (f" - anomaly: {load.anomaly}" if load.anomaly else "")


def _checks(data: ReportData) -> str:
    totals = [
        (escape(c["severity"]), _status(c["status"]), escape(c["kind"]), _n(c["count"])) for c in data.check_totals
    ]
    latest = [
        (
            str(c["run_id"]),
            escape(c["project"]),
            escape(c["check_name"]),
            escape(c["check_kind"]),
            escape(c["table_name"] or "-"),
            escape(c["severity"]),
            _status(c["status"]),
            _n(c["failing_rows"]),
            escape(figures(c)),
            f'<td class="err">{escape(c["detail"])}</td>',
        )
        for c in data.checks
    ]
    headers = ("run", "project", "check", "kind", "table", "severity", "status", "failing rows",
               "source / target / difference", "detail")  # fmt: skip
    return (
        "<h2>Data quality and reconciliation</h2><h3>In this period, by severity</h3>"
        + _table("check-totals", ("severity", "status", "kind", "results"), totals, "No check ran in this period.")
        + "<h3>The latest run of each project</h3>"
        + _table("checks", headers, latest, "No check result.")
    )


def _state(data: ReportData) -> str:
    rows = [
        (
            escape(s["project"]),
            escape(s["target_table"]),
            escape(s["watermark"] or "-"),
            escape(s["data_max_date"] or "-"),
            _n(s["rows"]),
            escape(s["strategy"] or "-"),
            _t(_as_utc(s.get("last_success"))),
        )
        for s in data.state
    ]
    headers = ("project", "table", "watermark", "data up to", "rows (last load)", "strategy", "last success (UTC)")
    return "<h2>Watermarks</h2>" + _table("state", headers, rows, "No table state yet.")


def _profiles(data: ReportData) -> str:
    if not data.profiles:
        return '<h2>Profiles</h2><p class="muted" id="profiles-empty">No profile (set profile: true on a table).</p>'
    out = ["<h2>Profiles: the latest load of each table</h2>"]
    for profile in data.profiles:
        rows = [
            (
                escape(c.column),
                escape(c.data_type or "-"),
                f'<td class="n{" bad" if c.null_jump else ""}" title="{escape(c.null_jump or "")}">'
                + ("-" if c.null_pct is None else f"{c.null_pct:.1f}%")
                + (" &#9650;" if c.null_jump else "")
                + "</td>",
                _n(c.distinct),
                escape(c.low or "-"),
                escape(c.high or "-"),
                _n(c.max_length),
            )
            for c in profile.columns
        ]
        rows_loaded = profile.columns[0].rows if profile.columns else 0
        out.append(
            f"<h3>{escape(profile.project)}.{escape(profile.table)} "
            f'<span class="muted">(run {profile.run_id}, {rows_loaded or 0:,} rows)</span></h3>'
        )
        out.append(
            _table(
                "profile-" + escape(profile.table),
                ("column", "type", "null %", "distinct", "min", "max", "max length"),
                rows,
                "No column.",
            )
        )
        jumps = [c for c in profile.columns if c.null_jump]
        if jumps:
            out.append(
                '<p class="bad null-jump">' + "; ".join(escape(f"{c.column}: {c.null_jump}") for c in jumps) + "</p>"
            )
    return "".join(out)


def _backfill(data: ReportData) -> str:
    if data.backfill is None:
        return ""
    totals = [
        tuple(escape(str(t.get(k, "-"))) for k in ("backfill", "project", "status"))
        + (_n(t["chunks"]), _n(t.get("rows")))
        for t in data.backfill_totals
    ]
    keys = [k for k in ("backfill", "project", "window_start", "window_end", "status", "rows", "attempts", "run_id",
                        "started", "finished", "error") if data.backfill and k in data.backfill[0]]  # fmt: skip
    chunks = [tuple(_chunk_cell(k, row[k]) for k in keys) for row in data.backfill]
    return (
        "<h2>Backfill ledgers</h2>"
        + _table("backfill-totals", ("backfill", "project", "status", "chunks", "rows"), totals, "No backfill.")
        + "<h3>The latest chunks</h3>"
        + _table("backfill", keys, chunks, "No backfill chunk.")
    )


def _chunk_cell(key: str, value: Any) -> str:
    if key in ("rows", "attempts"):
        return _n(value)
    if key == "status":
        return _status(str(value))
    if key == "error":
        return f'<td class="err">{escape(str(value or ""))}</td>'
    return escape("-" if value is None else str(value))


def _as_utc(value: Any) -> datetime | None:
    from script_factory.audit import as_utc

    return as_utc(value) if isinstance(value, datetime) else None
