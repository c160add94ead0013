"""PostgreSQL through psycopg 3: the production warehouse; bulk writes use COPY."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import Capabilities, Chunk
from connectors.sql import SqlConnector

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table


class PostgresConnector(SqlConnector):
    """``postgresql://user@host:5432/db`` (always driven by psycopg 3)."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=True, merge=True, streaming=True)
    kind: ClassVar[str] = "PostgreSQL"
    driver: ClassVar[str | None] = "psycopg"

    def engine_options(self) -> dict[str, Any]:
        timeout = int(self.variable("ETL_CONNECT_TIMEOUT", "15") or 15)
        return {**super().engine_options(), "connect_args": {"connect_timeout": timeout}}

    def server_version(self, conn: Connection) -> str:
        version = conn.exec_driver_sql("SHOW server_version").scalar()
        return f"PostgreSQL {version}"

    def bulk_write(self, conn: Connection, table: Table, columns: Sequence[str], chunks: Iterator[Chunk]) -> None:
        """``COPY table (columns) FROM STDIN`` on the transaction's own connection."""
        preparer = conn.dialect.identifier_preparer
        target = preparer.format_table(table)
        column_list = ", ".join(preparer.quote(c) for c in columns)
        dbapi = conn.connection.dbapi_connection
        with dbapi.cursor() as cur, cur.copy(f"COPY {target} ({column_list}) FROM STDIN") as copy:
            for chunk in chunks:
                for row in chunk:
                    copy.write_row(row)

    def truncate(self, conn: Connection, table: Table) -> None:
        preparer = conn.dialect.identifier_preparer
        conn.exec_driver_sql(f"TRUNCATE TABLE {preparer.format_table(table)}")

    def temp_table_options(self) -> Mapping[str, Any]:
        return {"prefixes": ["TEMPORARY"], "postgresql_on_commit": "DROP"}
