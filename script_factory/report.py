"""The run report: the short summary printed at the end of a run, and the e-mail that carries it
(its decision and HTML part are in script_factory/run_mail.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from script_factory.settings import Settings
from utilities.errors import ConfigError, EtlError
from utilities.files import shown_path
from utilities.secrets import Secret

if TYPE_CHECKING:  # utilities.notify (smtplib, ssl, the e-mail package) is imported when a run mails
    from script_factory.factory import Plan
    from script_factory.outcome import RunSummary
    from utilities.notify import Attachment, SmtpSettings

logger = logging.getLogger("script_factory.runner")


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
        f"  log       {shown_path(summary.log_file, home)}",
    ]
    for path in outcome.outputs:
        lines.append(f"  output    {shown_path(path, home)}" + ("" if path.exists() else " (deleted after the run)"))
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
    timeout = settings.get("ETL_SMTP_TIMEOUT") or "15"
    try:
        seconds = float(timeout)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise ConfigError(f"ETL_SMTP_TIMEOUT={timeout!r}: expected seconds such as 15")
    from utilities.notify import SmtpSettings

    return SmtpSettings(
        host=host,
        port=int(port_text),
        sender=sender,
        user=settings.get("ETL_SMTP_USER"),
        password=Secret(password) if password else None,
        security=security,
        timeout=seconds,
        ca_file=settings.get("ETL_SMTP_CA_FILE"),
    )


def notify(plan: Plan, settings: Settings, summary: RunSummary) -> None:
    """E-mail the run if project.yml asks for it on this outcome (see script_factory/run_mail.py); the
    mail sent is recorded in ``etl_notifications``."""
    from script_factory import run_mail
    from utilities.dates import utc_now

    email = plan.project.email
    if email is None:
        return
    engine = _warehouse_engine(plan, settings)
    try:
        facts = run_mail.RunFacts()
        if engine is not None and summary.run_id is not None:
            with engine.connect() as conn:
                facts = run_mail.read_facts(conn, summary.project, summary.run_id)
        now = utc_now()
        kind = run_mail.mail_kind(summary.status, facts, email.on, summary.outcome.error, now, email.repeat_after)
        if kind is None:
            if summary.status != "success" and "failure" in email.on:
                logger.info("run report not mailed: the same failure was mailed less than %s ago", email.repeat_after)
            return
        smtp = smtp_settings(settings)
        status = run_mail.status_line(summary.status, facts.warnings, kind)
        subject = f"[ETL {settings.environment}] {summary.project} {status} (run {summary.run_id or '-'})"
        home = settings.paths.home
        tail = run_mail.log_tail(summary.log_file, settings.masker) if summary.status != "success" else []
        text = summary_text(summary, home)
        if facts.warnings:
            text = f"{summary.project}: {status}\n" + text
        html = run_mail.html_body(summary, facts, kind, tail, home)
        attachments = [_report_attachment(summary, settings, engine)] if email.attach_report else []
        from utilities.notify import compose, send_message

        message = compose(smtp.sender, email.to, subject, text, settings.masker, html, attachments)
        send_message(smtp, message)
        if engine is not None:
            _record_mail(engine, summary, kind, now)
    finally:
        if engine is not None:
            engine.dispose()


def _warehouse_engine(plan: Plan, settings: Settings) -> Any:
    """An engine on the project's warehouse, or None when it cannot be opened (the mail goes anyway)."""
    from connectors import open_connector

    name = plan.project.warehouse
    url = plan.connection_urls.get(name)
    if url is None:
        return None
    try:
        return getattr(open_connector(name, url, settings.paths.home, settings.variables), "engine", None)
    except EtlError as exc:
        logger.warning("the run report cannot read the warehouse: %s", exc)
        return None


def _report_attachment(summary: RunSummary, settings: Settings, engine: Any) -> Attachment:
    from script_factory.report_data import read_report
    from script_factory.report_html import render
    from utilities.notify import Attachment

    data = read_report(engine, summary.project, 30, settings.masker, "")
    return Attachment(f"etl_report_{summary.project}_run{summary.run_id or 0}.html", render(data))


def _record_mail(engine: Any, summary: RunSummary, kind: str, now: Any) -> None:
    from sqlalchemy import insert

    from script_factory import audit, run_mail

    values = {
        "run_id": summary.run_id,
        "project": summary.project,
        "kind": kind,
        "fingerprint": run_mail.fingerprint(summary.outcome.error) if kind == "failure" else None,
        "sent_at": now,
    }
    try:
        with engine.begin() as conn:
            conn.execute(insert(audit.etl_notifications).values(**values))
    except Exception as exc:  # noqa: BLE001 - the mail went; a missing record only means a repeat may be mailed
        logger.warning("could not record the mail in etl_notifications: %s", type(exc).__name__)
