"""``--check`` on a machine without a connector's Python driver: one FAILED line naming the package
and the requirements file, exit code 2, no traceback, and no secret.

The driver is made missing for real in a child process: a folder first on its PYTHONPATH holds a
module of the driver's name that raises ModuleNotFoundError on import, as an absent package does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PROJECT = """\
project: {name}
connections:
  src: {{}}
tables:
  - target: items
    source: {{connection: src, {source}}}
    strategy: replace
"""

CASES = [
    # (scheme, source keys, URL, module made missing, package named in the message)
    ("s3", "pattern: 'x/*.csv'", "s3://bucket/prefix?region=us-east-1", "boto3", "boto3"),
    ("oracle", "table: items", "oracle://scott:{secret}@127.0.0.1:1/?service_name=X", "oracledb", "oracledb"),
    ("mssql", "table: items", "mssql://sa:{secret}@127.0.0.1:1/master", "pyodbc", "pyodbc"),
    (
        "snowflake",
        "table: items",
        "snowflake://etl:{secret}@acct/DB/PUBLIC",
        "snowflake/connector",
        "snowflake-connector-python",
    ),
    ("bigquery", "table: ds.items", "bigquery://proj/ds", "google/cloud/bigquery", "google-cloud-bigquery"),
    (
        "salesforce",
        "object: Account, fields: [Id]",
        "salesforce://etl:{secret}@login.salesforce.com",
        "simple_salesforce",
        "simple-salesforce",
    ),
]


def _shadow(folder: Path, module: str) -> None:
    """A module at dotted path ``module`` (slashes) whose import fails as a missing package's does."""
    *parents, leaf = module.split("/")
    where = folder.joinpath(*parents)
    where.mkdir(parents=True, exist_ok=True)
    name = module.replace("/", ".")
    (where / f"{leaf}.py").write_text(
        f"raise ModuleNotFoundError({f'No module named {name!r}'!r}, name={name!r})\n", encoding="utf-8"
    )


@pytest.mark.parametrize(("scheme", "source", "url", "module", "package"), CASES, ids=[c[0] for c in CASES])
def test_check_names_the_missing_driver(
    etl_home: Path, tmp_path: Path, scheme: str, source: str, url: str, module: str, package: str
) -> None:
    secret = "Sup3r-secret-pw"
    folder = etl_home / "customer_code" / "nodriver"
    folder.mkdir()
    (folder / "project.yml").write_text(PROJECT.format(name="nodriver", source=source), encoding="utf-8")
    shadow = tmp_path / "shadow"
    _shadow(shadow, module)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "AWS_", "GOOGLE_"))}
    env.update(
        ETL_HOME=str(etl_home),
        ETL_CONN_SRC=url.format(secret=secret),
        ETL_CONN_SRC_ACCESS_TOKEN=secret,  # Salesforce: a token, so only the driver is missing
        PYTHONPATH=str(shadow),
    )

    result = subprocess.run(
        [sys.executable, str(REPO / "script_runner.py"), "--project", "nodriver", "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    [line] = [line for line in result.stdout.splitlines() if line.split()[1:2] == ["src"]]
    assert line.startswith("FAILED  src (")
    assert f"the driver {package}" in line and "is not installed" in line, line
    assert "pip install -r requirements-connectors.txt" in line
    assert secret not in output
