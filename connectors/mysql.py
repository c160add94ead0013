"""MySQL and MariaDB through PyMySQL: sources read with unbuffered (server-side) cursors."""

from __future__ import annotations

from typing import Any, ClassVar

from connectors.base import Capabilities
from connectors.sql import SqlConnector


class MysqlConnector(SqlConnector):
    """``mysql://user:password@host:3306/db`` or ``mariadb://...`` (driven by PyMySQL)."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=True, merge=True, streaming=True)
    kind: ClassVar[str] = "MySQL"
    driver: ClassVar[str | None] = "pymysql"

    def sqlalchemy_url(self) -> Any:
        url = super().sqlalchemy_url()
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        return url

    def engine_options(self) -> dict[str, Any]:
        timeout = int(self.variable("ETL_CONNECT_TIMEOUT", "15") or 15)
        return {**super().engine_options(), "connect_args": {"connect_timeout": timeout}}

    def server_version(self, conn: Any) -> str:
        version = conn.exec_driver_sql("SELECT VERSION()").scalar()
        return f"{'MariaDB' if 'mariadb' in str(version).lower() else 'MySQL'} {version}"
