"""Start-up stays light: a dry run of the demo imports no heavy driver (and, once it has compiled the SQL it
shows in the source's dialect, no SQLAlchemy), and the driver of a connection is imported only when that
connection is used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = [
    "snowflake",
    "google.cloud.bigquery",
    "oracledb",
    "pyodbc",
    "boto3",
    "simple_salesforce",
    "connectorx",
    "pymysql",
    "duckdb",
    "pandas",
    "psycopg",
    "pyarrow",
]
PROBE = """
import io, json, sys
from contextlib import redirect_stdout
sys.path.insert(0, sys.argv[1])
import script_runner
with redirect_stdout(io.StringIO()):
    code = script_runner.main(["--project", "sales_demo", "--dry-run"])
print(json.dumps({"code": int(code), "loaded": [m for m in sys.argv[2:] if m in sys.modules]}))
"""


def _dry_run_in_a_fresh_process(modules: list[str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO), *modules], capture_output=True, text=True, check=False, timeout=60
    )
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_a_dry_run_imports_no_heavy_driver(demo_home: Path) -> None:
    """The first dry run validates the project with pydantic and compiles the reads with SQLAlchemy (and
    keeps both); the next one of the same project imports neither pydantic nor SQLAlchemy nor a driver
    nor pyarrow."""
    assert _dry_run_in_a_fresh_process(["pydantic", *HEAVY]) == {"code": 0, "loaded": ["pydantic"]}
    assert (demo_home / "metadata" / "cache" / "reads").is_dir()
    assert (demo_home / "metadata" / "cache" / "config" / "sales_demo.pickle").is_file()
    second = ["pydantic", "pydantic_core", "yaml", "sqlalchemy", *HEAVY]
    assert _dry_run_in_a_fresh_process(second) == {"code": 0, "loaded": []}


LIST_HEAVY = ["sqlalchemy", "psycopg", "pyarrow", "pydantic"]
LIST_PROBE = """
import io, json, sys
from contextlib import redirect_stdout
sys.path.insert(0, sys.argv[1])
import script_runner
out = io.StringIO()
with redirect_stdout(out):
    code = script_runner.main(["--list"])
print(json.dumps({"code": int(code), "out": out.getvalue(), "loaded": [m for m in sys.argv[2:] if m in sys.modules]}))
"""


def _list_in_a_fresh_process() -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", LIST_PROBE, str(REPO), *LIST_HEAVY],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_list_imports_no_database_library_and_no_pydantic(demo_home: Path) -> None:
    report = _list_in_a_fresh_process()
    assert report["code"] == 0
    assert "  fact_order_lines  <- sales_src: sql/order_lines.sql  (merge)" in str(report["out"])
    assert report["loaded"] == []


def test_list_reads_what_the_full_validation_reads(demo_home: Path) -> None:
    """The light read of --list shows each project exactly as the validated config would."""
    from script_factory.factory import load_project_config
    from script_factory.listing import full_entry, listing
    from script_factory.settings import load_settings

    folder = demo_home / "customer_code" / "with_defaults"
    folder.mkdir()
    (folder / "project.yml").write_text(
        "project: with_defaults\ndescription: '  spaced  '\nconnections:\n  src: {default: 'sqlite:///x.db'}\n"
        "defaults:\n  strategy: append\n  source: {connection: src}\n  cursor: ts\n"
        "tables:\n  - {target: a.t1, source: {table: s.t1}}\n  - {target: t2, source: {query: 'sql\\\\q.sql'}, "
        "strategy: replace}\n",
        encoding="utf-8",
    )
    (folder / "sql").mkdir()
    (folder / "sql" / "q.sql").write_text("select 1 as ts", encoding="utf-8")
    settings = load_settings(None)
    names = ["sales_demo", "with_defaults"]
    light = listing(settings.paths.projects, names, lambda name: "not read lightly: " + name)
    full = "\n".join(full_entry(name, lambda n: load_project_config(n, settings)) for name in names)
    assert "not read lightly" not in light and "invalid" not in full
    assert light == full
    assert "  a.t1  <- src: s.t1  (append)" in light.splitlines()


def test_list_leaves_what_it_cannot_read_lightly_to_the_full_validation(demo_home: Path) -> None:
    from script_factory.config_models import Strategy
    from script_factory.listing import STRATEGIES, listing

    assert tuple(s.value for s in Strategy) == STRATEGIES
    folder = demo_home / "customer_code" / "broken"
    folder.mkdir()
    (folder / "project.yml").write_text("project: broken\ntables:\n  - {target: t, strategy: upsert}\n")
    text = listing(demo_home / "customer_code", ["broken", "sales_demo"], lambda name: f"{name}  (full)")
    assert text.splitlines()[0] == "broken  (full)"
    assert text.splitlines()[1].startswith("sales_demo  Demo shop")
    result = subprocess.run(
        [sys.executable, str(REPO / "script_runner.py"), "--list"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("broken  (invalid: ") and "upsert" in result.stdout


RUN_PROBE = """
import io, json, sys
from contextlib import redirect_stdout
sys.path.insert(0, sys.argv[1])
import script_runner
with redirect_stdout(io.StringIO()):
    code = script_runner.main(["--project", "sales_demo", "--load-type", "F"])
print(json.dumps({"code": int(code), "loaded": [m for m in sys.argv[2:] if m in sys.modules]}))
"""


def test_a_run_of_a_project_that_does_not_mail_imports_no_mail_code(demo_home: Path) -> None:
    """smtplib, ssl's e-mail use and the report's mail code are imported only by a project with email:."""
    assert "email:" not in (demo_home / "customer_code" / "sales_demo" / "project.yml").read_text(encoding="utf-8")
    modules = ["smtplib", "utilities.notify", "script_factory.run_mail"]
    result = subprocess.run(
        [sys.executable, "-c", RUN_PROBE, str(REPO), *modules], capture_output=True, text=True, check=False, timeout=120
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "loaded": []}, result.stderr[-2000:]
