"""Start-up stays light: a dry run of the demo imports no heavy driver, and the driver of a
connection is imported only when that connection is used."""

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


def test_a_dry_run_imports_no_heavy_driver(demo_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO), *HEAVY], capture_output=True, text=True, check=False, timeout=60
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "loaded": []}, result.stderr
