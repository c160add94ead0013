"""script_factory/scaffold.py without a database: the --tables list, .env lines, launchers, and the
command line's refusals of --new before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import TableName
from script_factory.scaffold import env_assignment, parse_tables, render_launchers
from script_factory.settings import REPO_ROOT, read_env_file
from tests.conftest import run_cli
from utilities.errors import ConfigError
from utilities.secrets import Secret


def test_tables_are_parsed_in_order_once_each() -> None:
    assert parse_tables(" erp.orders, customers ,erp.orders,") == (
        TableName("orders", "erp"),
        TableName("customers"),
    )


@pytest.mark.parametrize("text", ["erp.orders;drop", "a.b.c", "erp.'x'", " , "])
def test_a_bad_table_list_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--tables"):
        parse_tables(text)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://etl:pw@db.example.com:5432/erp",
        "postgresql://etl:p#w rd@db/erp",  # '#' and a space: quoted
        "mysql://etl:pa$s`s@db/erp",
        'mysql://etl:say"hi"@db/erp',
    ],
)
def test_a_url_reads_back_from_env_exactly(tmp_path: Path, url: str) -> None:
    line = env_assignment("ETL_CONN_ERP", Secret(url))
    env = tmp_path / ".env"
    env.write_text(f"# before\nOTHER=1\n{line}\n", encoding="utf-8")
    assert read_env_file(env)["ETL_CONN_ERP"] == url


@pytest.mark.parametrize("url", ["mysql://etl:it's\\x\"@db/erp", "mysql://etl:pa${HOME}ss@db/erp"])
def test_a_url_no_env_line_can_carry_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="percent-encode"):
        env_assignment("ETL_CONN_ERP", Secret(url))


def test_launchers_in_the_runner_folder_are_copies_of_sales_demo() -> None:
    launchers = render_launchers(REPO_ROOT, "sales_demo")
    assert sorted(p.name for p in launchers) == [
        "sales_demo.bat",
        "sales_demo.sh",
        "sales_demo_docker.bat",
        "sales_demo_docker.sh",
    ]
    for path, text in launchers.items():
        assert path.parent == REPO_ROOT / "script_runner"
        assert path.read_bytes() == text.encode("utf-8"), path.name


def test_launchers_of_another_home_pin_it_and_call_the_runner(tmp_path: Path) -> None:
    launchers = {p.name: t for p, t in render_launchers(tmp_path, "erp_sync").items()}
    assert sorted(launchers) == ["erp_sync.bat", "erp_sync.sh"]  # the Docker launchers mount the runner's projects
    sh = launchers["erp_sync.sh"]
    assert 'ETL_HOME=$(cd "$(dirname "$0")/.." && pwd)\nexport ETL_HOME\n' in sh
    assert f"exec '{REPO_ROOT / 'script_runner' / '_launch.sh'}' erp_sync \"$@\"\n" in sh
    bat = launchers["erp_sync.bat"]
    assert "\r\n" in bat and "\n" not in bat.replace("\r\n", "")
    assert 'set "ETL_HOME=%~dp0.."\r\n' in bat
    assert f'call "{REPO_ROOT / "script_runner" / "_launch.bat"}" erp_sync %*\r\n' in bat


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--new", "p", "--tables", "a"], "--new needs --source (e.g. script_runner.py --new p --source URL"),
        (["--new", "p", "--source", "sqlite:///x.db"], "--new needs --tables"),
        (["--source", "sqlite:///x.db"], "--source belongs to --new: give --new NAME --source URL --tables LIST"),
        (["--project", "p", "--warehouse", "sqlite:///w.db"], "--warehouse belongs to --new"),
        (["--new", "p", "--source", "s", "--tables", "a", "--project", "p"], "--new cannot be combined with --project"),
        (["--new", "p", "--source", "s", "--tables", "a", "--list"], "--new cannot be combined with --list"),
        (["--new", "../p", "--source", "s", "--tables", "a"], "--new '../p' is not a project name"),
        (["--new", "Sales", "--source", "s", "--tables", "a"], "--new 'Sales' is not a project name"),
    ],
)
def test_bad_new_arguments_are_one_line_and_exit_2(
    etl_home: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_cli(*args)
    assert result.code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"script_runner.py: error: {message}"), result.stderr
    assert sorted(p.name for p in etl_home.iterdir()) == ["aggregations", "customer_code", "metadata", "warehouse"]
