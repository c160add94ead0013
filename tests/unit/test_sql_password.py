"""ETL_CONN_<NAME>_PASSWORD for every SQL database: the URL's own password wins, else the setting; it
goes into the SQLAlchemy URL object only, never into a text that could be shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import open_connector
from connectors.sql import SqlConnector
from utilities.secrets import Secret

SETTING = {"ETL_CONN_DB_PASSWORD": "From-Setting-9"}


def _connector(url: str, tmp_path: Path, variables: dict[str, str] | None = None) -> SqlConnector:
    connector = open_connector("db", Secret(url), tmp_path, variables)
    assert isinstance(connector, SqlConnector)
    return connector


@pytest.mark.parametrize("url", ["mysql://etl@db:3306/shop", "mariadb://etl@db/shop", "postgresql://etl@db/wh"])
def test_the_setting_supplies_a_missing_password(url: str, tmp_path: Path) -> None:
    connector = _connector(url, tmp_path, SETTING)
    sa_url = connector.sqlalchemy_url()
    assert sa_url.password == "From-Setting-9"
    assert "From-Setting-9" not in f"{sa_url} {sa_url!r} {connector.safe_url}"
    assert _connector(url, tmp_path).sqlalchemy_url().password is None


def test_the_urls_own_password_wins(tmp_path: Path) -> None:
    assert _connector("mysql://etl:in-url@db/shop", tmp_path, SETTING).sqlalchemy_url().password == "in-url"


def test_sqlite_takes_no_password(tmp_path: Path) -> None:
    assert _connector("sqlite:///metadata/x.db", tmp_path, SETTING).sqlalchemy_url().password is None
