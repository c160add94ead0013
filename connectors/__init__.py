"""The connector registry: URL scheme -> module, imported on first use so a missing driver never
breaks a project that does not use it."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from utilities.errors import ConfigError

if TYPE_CHECKING:
    from connectors.base import Connector
    from utilities.secrets import Secret

#: URL scheme (the part before ``+driver``) -> "module:Class". Add a line to add a connector.
REGISTRY: dict[str, str] = {
    "sqlite": "connectors.sqlite:SqliteConnector",
    "postgresql": "connectors.postgresql:PostgresConnector",
    "postgres": "connectors.postgresql:PostgresConnector",
    "mysql": "connectors.mysql:MysqlConnector",
    "mariadb": "connectors.mysql:MysqlConnector",
    "csv": "connectors.csv_files:CsvConnector",
    "salesforce": "connectors.salesforce:SalesforceConnector",
    "oracle": "connectors.oracle:OracleConnector",
    "mssql": "connectors.sqlserver:SqlServerConnector",
    "sqlserver": "connectors.sqlserver:SqlServerConnector",
    "s3": "connectors.s3:S3Connector",
    "bigquery": "connectors.bigquery:BigQueryConnector",
    "snowflake": "connectors.snowflake:SnowflakeConnector",
}


def scheme_of(url: str) -> str:
    """``postgresql+psycopg://...`` -> ``postgresql``; raises ConfigError when there is no scheme."""
    head, sep, _ = url.partition("://")
    if not sep or not head:
        raise ConfigError(f"connection URL {_first_chars(url)!r} has no scheme (expected e.g. postgresql://...)")
    return head.split("+", 1)[0].lower()


def connector_class(scheme: str) -> type[Connector]:
    """The connector class registered for ``scheme``, importing its module now."""
    target = REGISTRY.get(scheme)
    if target is None:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"no connector for URL scheme {scheme!r} (known: {known})")
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def open_connector(name: str, url: Secret, home: Path, variables: Mapping[str, str] | None = None) -> Connector:
    """A connector for connection ``name``; its driver is imported on first real use.

    ``variables`` is the run's merged environment, from which the connector reads its documented
    ``ETL_CONN_<NAME>_<KEY>`` settings.
    """
    return connector_class(scheme_of(url.reveal()))(name, url, home, variables)


def _first_chars(url: str) -> str:
    return url[:12] + ("..." if len(url) > 12 else "")
