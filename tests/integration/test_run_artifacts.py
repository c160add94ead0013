"""What a run leaves behind: outputs (kept or deleted), log and output retention, the e-mail,
and secrets masked in every one of them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fakes.smtp_server import SmtpServer
from tests.projects import items_project, items_rows, sqlite_items

PASSWORD = "S3cr3t-pa55w0rd"


def warehouse(home: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(home / "metadata" / "warehouse.db") as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def items_home(etl_home: Path) -> Path:
    sqlite_items(etl_home / "metadata" / "src.db", items_rows(5))
    return etl_home


def test_outputs_flagged_delete_after_run_are_reported_then_deleted(items_home: Path) -> None:
    items_project(
        items_home,
        extra="""
        outputs:
          - {name: kept, query: sql/items.sql}
          - {name: scratch, query: sql/items.sql, delete_after_run: true}
    """,
    )
    result = run_cli("--project", "items_demo")
    assert result.code == 0, result.stderr
    folder = items_home / "metadata" / "output" / "items_demo"
    assert [p.name.split("_")[0] for p in folder.iterdir()] == ["kept"]
    assert "(deleted after the run)" in result.stdout
    recorded = warehouse(items_home, "SELECT output_files FROM etl_runs")[0][0].splitlines()
    assert [Path(p).name.split("_")[0] for p in recorded] == ["kept", "scratch"]


def test_logs_and_outputs_keep_only_the_newest_runs(items_home: Path) -> None:
    items_project(
        items_home,
        extra="""
        outputs:
          - {name: items_out, query: sql/items.sql}
        retention: {log_runs: 2, output_runs: 2}
    """,
    )
    for _ in range(4):
        assert run_cli("--project", "items_demo").code == 0
    logs = sorted((items_home / "metadata" / "logs" / "items_demo").iterdir())
    outputs = sorted((items_home / "metadata" / "output" / "items_demo").iterdir())
    assert len(logs) == 2 and len(outputs) == 2
    last_log, last_output = warehouse(items_home, "SELECT log_file, output_files FROM etl_runs ORDER BY run_id DESC")[0]
    assert Path(last_log) in logs and Path(last_output) in outputs


def test_the_failure_e_mail_is_sent_with_secrets_masked(
    items_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    items_project(
        items_home,
        query="SELECT id, name, amount, updated_at FROM missing_table",
        extra="""
        notify:
          email: {to: [data-team@example.com], on: [failure]}
    """,
    )
    # A source URL with a password (trust auth ignores it) and an SMTP password: neither may leak.
    monkeypatch.setenv("ETL_CONN_SRC", pg_url.replace("postgres@", f"postgres:{PASSWORD}@"))
    with SmtpServer() as smtp:
        monkeypatch.setenv("ETL_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("ETL_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("ETL_SMTP_SECURITY", "none")
        monkeypatch.setenv("ETL_SMTP_FROM", "etl@example.com")
        monkeypatch.setenv("ETL_SMTP_PASSWORD", "smtp-Pa55word")
        result = run_cli("--project", "items_demo")
    assert result.code == 1
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["To"] == "data-team@example.com"
    assert message["Subject"].startswith("[ETL local] items_demo FAILED (run ")
    body = message.get_body(("plain",)).get_content()
    assert "missing_table" in body and "postgres:***@" in body
    log = next((items_home / "metadata" / "logs" / "items_demo").iterdir()).read_text(encoding="utf-8")
    error = warehouse(items_home, "SELECT error_message FROM etl_runs")[0][0]
    for text in (body, log, error, result.stdout, result.stderr):
        assert PASSWORD not in text and "smtp-Pa55word" not in text


def test_no_e_mail_on_success_when_only_failures_are_asked_for(
    items_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items_project(
        items_home,
        extra="""
        notify:
          email: {to: [data-team@example.com], on: [failure]}
    """,
    )
    with SmtpServer() as smtp:
        monkeypatch.setenv("ETL_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("ETL_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("ETL_SMTP_SECURITY", "none")
        monkeypatch.setenv("ETL_SMTP_FROM", "etl@example.com")
        assert run_cli("--project", "items_demo").code == 0
    assert smtp.messages == []


def test_e_mail_without_smtp_settings_is_a_config_error(items_home: Path) -> None:
    items_project(
        items_home,
        extra="""
        notify:
          email: {to: [data-team@example.com]}
    """,
    )
    result = run_cli("--project", "items_demo")
    assert result.code == 2
    assert "notify.email is set in project.yml but ETL_SMTP_HOST is not" in result.stderr
