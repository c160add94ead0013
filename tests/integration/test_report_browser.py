"""The HTML report opened in headless Chromium (Debian's ``chromium``): no console message, the charts and
tables in the DOM, a screenshot kept under metadata/test-artifacts/; for 0 runs, a failing project, 500
runs and a backfill ledger; and 10,000 runs stay a small file."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert

from script_factory import audit
from tests.conftest import REPO, run_cli
from tests.projects import items_project, items_rows, sqlite_items
from utilities.dates import utc_now

ARTIFACTS = Path(os.environ.get("ETL_TEST_ARTIFACTS", REPO / "metadata" / "test-artifacts"))
SECRET = "hunter2-Secret-q"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def _open(report: Path, name: str, tmp_path: Path) -> str:
    """The DOM Chromium built from ``report``; a screenshot saved as an artifact; no console message."""
    browser = _chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'chromium'}", "--enable-logging=stderr", "--v=0"]  # fmt: skip
    dom = subprocess.run(
        [*common, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120, check=True
    )
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    shot = ARTIFACTS / f"report_{name}.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1000,2600", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000
    return dom.stdout


def _report(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "report.html"
    result = run_cli("--report", *args, "--out", str(out))
    assert result.code == 0, result.stderr
    assert not out.with_name("report.html.partial").exists()
    return out


def test_no_run_yet(etl_home: Path, tmp_path: Path) -> None:
    dom = _open(_report(tmp_path), "no_runs", tmp_path)
    assert 'id="no-runs"' in dom and 'id="runs-empty"' in dom and "<script" not in dom


def test_a_failing_project(etl_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = "checks:\n  - {kind: row_count, table: items, max: 1, severity: warn}\n"
    items_project(etl_home, extra="profile: true\n" + checks)
    source = etl_home / "metadata" / "src.db"
    sqlite_items(source, items_rows(5))
    assert run_cli("--project", "items_demo").code == 0
    monkeypatch.setenv("ETL_CONN_SRC", f"postgresql://etl:{SECRET}@127.0.0.1:1/none")  # refused, password in error
    assert run_cli("--project", "items_demo").code == 1
    report = _report(tmp_path, "--project", "items_demo")
    text = report.read_text(encoding="utf-8")
    assert SECRET not in text
    dom = _open(report, "failing_project", tmp_path)
    assert dom.count('class="chart timeline"') == 1
    assert 'data-series="rows items"' in dom and 'data-series="duration items"' in dom
    failures = dom.split('id="failures"', 1)[1].split("</table>", 1)[0]
    assert "load:items" in failures and "***" in failures
    assert 'id="checks"' in dom and "row_count_items" in dom and 'id="check-totals"' in dom
    assert 'id="state"' in dom and 'id="profile-items"' in dom
    assert "Backfill ledgers" not in dom  # no etl_backfill_chunks table in this warehouse


def _history(url: str, runs: int, tables: int = 2) -> None:
    """``runs`` runs of two projects over 30 days, some failed, written straight into the audit tables."""
    engine = create_engine(url)
    audit.ensure_tables(engine)
    now, rng = utc_now(), random.Random(13)
    run_rows, task_rows = [], []
    for i in range(1, runs + 1):
        at = now - timedelta(minutes=int(43_000 * (runs - i) / runs) + 5)
        status = "failed" if rng.random() < 0.05 else "success"
        project = f"project_{i % 2}"
        rows = 1000 + rng.randint(-50, 50) if i % 97 else 40  # a volume anomaly now and then
        run_rows.append({"run_id": i, "project": project, "status": status, "load_type": "F" if i % 50 == 1 else "I",
                         "start_execution_time": at, "duration_seconds": rng.uniform(1, 9), "number_of_records": rows,
                         "error_message": f"connection to postgresql://etl:{SECRET}@db failed" if status == "failed"
                         else None})  # fmt: skip
        for t in range(tables):
            task_rows.append({"run_id": i, "project": project, "task_name": f"load:table_{t}", "task_kind": "load",
                              "target_table": f"table_{t}", "status": status, "start_time": at, "rows": rows,
                              "duration_seconds": rng.uniform(0.5, 4)})  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(audit.etl_runs), run_rows)
        conn.execute(insert(audit.etl_task_runs), task_rows)
    engine.dispose()


def test_500_runs_and_a_backfill_ledger(etl_home: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{etl_home / 'metadata' / 'warehouse.db'}"
    _history(url, 500)
    engine = create_engine(url)
    with engine.begin() as conn:  # the ledger of issue 12, as its columns are announced
        conn.exec_driver_sql(
            "CREATE TABLE etl_backfill_chunks (backfill_id INTEGER, project TEXT, window_start TEXT, window_end TEXT, "
            "status TEXT, rows INTEGER, attempts INTEGER, run_id INTEGER, started_at TEXT, finished_at TEXT, "
            "error_message TEXT)"
        )
        conn.exec_driver_sql(
            "INSERT INTO etl_backfill_chunks VALUES (1, 'project_0', '2025-01-01', '2025-01-08', 'done', 70, 1, 3, "
            "'2026-01-01', '2026-01-01', NULL), (1, 'project_0', '2025-01-08', '2025-01-15', 'failed', NULL, 3, 4, "
            f"'2026-01-01', NULL, 'password={SECRET} refused')"
        )
    engine.dispose()
    report = _report(tmp_path)
    assert SECRET not in report.read_text(encoding="utf-8")
    dom = _open(report, "500_runs", tmp_path)
    assert dom.count('class="chart timeline"') == 2
    assert dom.count('class="chart series"') == 8  # rows and duration of two tables in two projects
    assert 'class="dot anomaly"' in dom and 'id="anomalies"' in dom
    assert dom.count("<tr>", dom.index('id="runs"'), dom.index("</table>", dom.index('id="runs"'))) == 51
    assert 'id="backfill-totals"' in dom and 'id="backfill"' in dom and "2025-01-08" in dom


def test_10000_runs_stay_a_small_file(etl_home: Path, tmp_path: Path) -> None:
    _history(f"sqlite:///{etl_home / 'metadata' / 'warehouse.db'}", 10_000, tables=1)
    report = _report(tmp_path, "--days", "30")
    assert report.stat().st_size < 1_500_000
    text = report.read_text(encoding="utf-8")
    assert 'class="day ' in text  # the timeline is drawn as daily bars
    assert "The latest 50 of 10,000 runs." in text
