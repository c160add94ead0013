"""The run report: the short summary printed at the end of a run, and the e-mail that carries it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from script_factory.settings import Settings
from utilities.errors import ConfigError
from utilities.notify import SmtpSettings, send_email
from utilities.secrets import Secret

if TYPE_CHECKING:
    from script_factory.factory import Plan
    from script_factory.outcome import RunSummary


def summary_text(summary: RunSummary, home: Path | None = None) -> str:
    """A few lines: status, tasks, rows, duration, the log and the outputs."""
    outcome = summary.outcome
    ok = sum(1 for o in summary.outcomes if o.status == "success")
    skipped = sum(1 for o in summary.outcomes if o.status == "skipped")
    failed = [o for o in summary.outcomes if o.status not in ("success", "skipped")]
    tasks = f"{ok} ok" + (f", {len(failed)} failed ({', '.join(o.task.name for o in failed)})" if failed else "")
    tasks += f", {skipped} skipped ({'after the failed loads' if failed else 'no new data'})" if skipped else ""
    lines = [
        f"{summary.project}: {summary.status.upper()}  (run {summary.run_id or '-'}, load type {summary.load_type}, "
        f"exit code {int(summary.exit_code)})",
        f"  tasks     {tasks}",
        f"  rows      {outcome.rows:,} loaded" + (f", data up to {outcome.data_max}" if outcome.data_max else ""),
        f"  duration  {summary.seconds:.1f} s",
        f"  log       {_show(summary.log_file, home)}",
    ]
    for path in outcome.outputs:
        lines.append(f"  output    {_show(path, home)}" + ("" if path.exists() else " (deleted after the run)"))
    if outcome.error:
        lines.append(f"  error     {outcome.error}")
    if not summary.audit_closed:
        lines.append(f"  audit     run {summary.run_id} could not be closed (warehouse unreachable); see the log")
    return "\n".join(lines)


def smtp_settings(settings: Settings) -> SmtpSettings:
    """SMTP settings from ``ETL_SMTP_*``; ConfigError naming the variable when one is missing or bad."""
    host = settings.get("ETL_SMTP_HOST")
    sender = settings.get("ETL_SMTP_FROM")
    if not host or not sender:
        missing = "ETL_SMTP_HOST" if not host else "ETL_SMTP_FROM"
        raise ConfigError(f"notify.email is set in project.yml but {missing} is not; set it in the environment or .env")
    security = (settings.get("ETL_SMTP_SECURITY") or "starttls").lower()
    if security not in {"starttls", "ssl", "none"}:
        raise ConfigError(f"ETL_SMTP_SECURITY={security!r}: expected starttls, ssl or none")
    port_text = settings.get("ETL_SMTP_PORT") or {"ssl": "465", "starttls": "587"}.get(security, "25")
    if not port_text.isdigit():
        raise ConfigError(f"ETL_SMTP_PORT={port_text!r}: expected a port number such as 587")
    password = settings.get("ETL_SMTP_PASSWORD")
    return SmtpSettings(
        host=host,
        port=int(port_text),
        sender=sender,
        user=settings.get("ETL_SMTP_USER"),
        password=Secret(password) if password else None,
        security=security,
    )


def notify(plan: Plan, settings: Settings, summary: RunSummary) -> None:
    """E-mail the summary if project.yml asks for it on this outcome."""
    email = plan.project.email
    outcome = "success" if summary.status == "success" else "failure"
    if email is None or outcome not in email.on:
        return
    subject = f"[ETL {settings.environment}] {summary.project} {summary.status.upper()} (run {summary.run_id or '-'})"
    send_email(smtp_settings(settings), email.to, subject, summary_text(summary, settings.paths.home), settings.masker)


def _show(path: Path | None, home: Path | None) -> str:
    if path is None:
        return "-"
    if home is not None:
        try:
            return str(path.relative_to(home))
        except ValueError:
            pass
    return str(path)
