"""The run's e-mail against a real SMTP server (aiosmtpd): STARTTLS + AUTH with a self-signed certificate
made here, the MIME parts, the status line with warnings, the masked log tail, the attached report,
one mail for a repeated failure, ``recovered``, and a wrong SMTP password that changes nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.smtp_server import SmtpServer
from tests.projects import items_project, items_rows, sqlite_items

SMTP_PASSWORD = "smtp-Pa55word-x"
SOURCE_PASSWORD = "src-S3cret-y"
MAIL = """
checks:
  - {{kind: row_count, table: items, max: 1, severity: warn}}
notify:
  email: {{to: [data-team@example.com], on: [{on}], attach_report: true}}
"""


def _smtp_env(monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer, password: str = SMTP_PASSWORD) -> None:
    monkeypatch.setenv("ETL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ETL_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("ETL_SMTP_FROM", "etl@example.com")
    if smtp.cert_file is not None:
        monkeypatch.setenv("ETL_SMTP_SECURITY", "starttls")
        monkeypatch.setenv("ETL_SMTP_CA_FILE", str(smtp.cert_file))
        monkeypatch.setenv("ETL_SMTP_USER", "etl")
        monkeypatch.setenv("ETL_SMTP_PASSWORD", password)
    else:
        monkeypatch.setenv("ETL_SMTP_SECURITY", "none")


def test_success_with_warnings_over_starttls_and_auth(
    etl_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items_project(etl_home, extra=MAIL.format(on="warning"))
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(5))
    with SmtpServer(tmp_path, user="etl", password=SMTP_PASSWORD) as smtp:
        _smtp_env(monkeypatch, smtp)
        result = run_cli("--project", "items_demo")
    assert result.code == 0, result.stderr
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["Subject"] == "[ETL local] items_demo SUCCESS with 1 warning (run 1)"
    assert message.get_content_type() == "multipart/mixed"
    alternative = next(p for p in message.iter_parts() if p.get_content_type() == "multipart/alternative")
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    html = message.get_body(("html",)).get_content()
    assert "items_demo: SUCCESS with 1 warning" in html
    assert 'id="tables"' in html and "load:items" in html and ">5<" in html  # rows per table
    assert 'id="checks"' in html and "row_count_items" in html and ">warn<" in html
    assert 'id="log-tail"' not in html  # the log tail is for failures
    attachments = list(message.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["etl_report_items_demo_run1.html"]
    assert "<svg" in attachments[0].get_content()
    log = next((etl_home / "metadata" / "logs" / "items_demo").iterdir()).read_text(encoding="utf-8")
    assert SMTP_PASSWORD not in log + message.as_string()


def test_failure_mail_has_the_masked_log_tail_once_per_repeat_and_then_recovered(
    etl_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    items_project(
        etl_home,
        query="SELECT id, name, amount, updated_at FROM missing_table",
        extra="notify:\n  email: {to: [data-team@example.com], on: [failure, recovered]}\n",
    )
    monkeypatch.setenv("ETL_CONN_SRC", pg_url.replace("postgres@", f"postgres:{SOURCE_PASSWORD}@"))
    with SmtpServer() as smtp:
        _smtp_env(monkeypatch, smtp)
        assert run_cli("--project", "items_demo").code == 1
        assert run_cli("--project", "items_demo").code == 1  # the same failure: no second mail within 6h
        assert len(smtp.messages) == 1
        failure = smtp.messages[0]
        (etl_home / "customer_code" / "items_demo" / "sql" / "items.sql").write_text(
            "SELECT 1::bigint AS id, 'a' AS name, 1.5 AS amount, timestamp '2024-01-01' AS updated_at",
            encoding="utf-8",
        )
        assert run_cli("--project", "items_demo").code == 0
        assert run_cli("--project", "items_demo").code == 0  # a plain success: not asked for
    assert [m["Subject"] for m in smtp.messages] == [
        "[ETL local] items_demo FAILED (run 1)",
        "[ETL local] items_demo RECOVERED: SUCCESS (run 3)",
    ]
    html = failure.get_body(("html",)).get_content()
    tail = html.split('id="log-tail"', 1)[1].split("</pre>", 1)[0]
    assert "missing_table" in tail and "postgres:***@" in tail
    assert 5 < tail.count("\n") + 1 <= 40
    for part in (html, failure.get_body(("plain",)).get_content(), failure["Subject"]):
        assert SOURCE_PASSWORD not in part


def test_a_wrong_smtp_password_fails_fast_is_logged_and_keeps_the_exit_code(
    etl_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items_project(etl_home, extra=MAIL.format(on="success"))
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(1))
    with SmtpServer(tmp_path, user="etl", password=SMTP_PASSWORD) as smtp:
        _smtp_env(monkeypatch, smtp, password="wrong-Pa55word-z")
        monkeypatch.setenv("ETL_SMTP_TIMEOUT", "3")  # this server stalls after a failed AUTH, as many do
        started = time.monotonic()
        result = run_cli("--project", "items_demo")
        elapsed = time.monotonic() - started
    assert result.code == 0
    assert smtp.messages == []
    assert elapsed < 10  # the run's own second, and at most ETL_SMTP_TIMEOUT for the stalled answer
    log = next((etl_home / "metadata" / "logs" / "items_demo").iterdir()).read_text(encoding="utf-8")
    assert "could not send the run report" in log
    assert "wrong-Pa55word-z" not in log + result.stdout + result.stderr
