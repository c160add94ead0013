"""PostgreSQL through psycopg 3: the production warehouse. Loads use COPY, and PostgreSQL to
PostgreSQL passes COPY bytes straight through without Python touching a row."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import (
    ARROW,
    PGCOPY,
    ROWS,
    ArrowStream,
    Capabilities,
    Chunk,
    LoadStats,
    ReadRequest,
    RowStream,
)
from connectors.copy_writer import queued_writes
from connectors.driver_errors import Verdict, credential_variables, fatal, first_line, transient
from connectors.sql import SqlConnector, dbapi_connection

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table

    from utilities.progress import Progress

logger = logging.getLogger(__name__)

WRITE_BYTES = 1 << 18  # COPY bytes gathered before one write to the target
CSV_SLICE_ROWS = 8192  # Arrow rows encoded (CSV or binary COPY) at a time (about 1 MB of lineitem)
QUEUED_SLICES = 4  # formatted slices waiting for the writer thread, at most

# SQLSTATEs worth a retry (besides class 08, connection exceptions); every other code is fatal,
# 57014 (statement timeout or pg_cancel_backend) included: the same statement would be canceled again.
TRANSIENT_SQLSTATES = {
    "40001": "a concurrent transaction conflicted (serialization failure); a retry usually succeeds",
    "40P01": "a deadlock with another transaction; a retry usually succeeds",
    "53300": "the server has no free connection slot (max_connections); retry later",
    "57P01": "the server ended the session (shutdown or pg_terminate_backend); retry when it is back",
    "57P02": "the server is restarting after a crash; retry when it is back",
    "57P03": "the server is starting up or shutting down; retry when it accepts connections",
}
CONNECTION_HINT = "the connection failed or was lost; check that the server is running and reachable"
FATAL_HINTS = {
    "57014": "the statement was canceled (statement_timeout or pg_cancel_backend); raise the timeout "
    "for this user or make the query cheaper",
    "3D000": "check the database name in ETL_CONN_{NAME}",
    "28000": "check the user and password ({credentials})",
    "28P01": "check the user and password ({credentials})",
    "42501": "the user lacks a privilege on an object of the query; GRANT it or use another user",
    "42P01": "check the table and column names (and schema) in the query",
    "42703": "check the table and column names (and schema) in the query",
    "3F000": "check the table and column names (and schema) in the query",
    "42601": "check the query's SQL",
}


def classify(orig: BaseException, name: str = "NAME") -> Verdict | None:
    """The verdict for a psycopg error by its SQLSTATE (``orig.sqlstate``), or None if it is not one.

    Retried: class 08 and :data:`TRANSIENT_SQLSTATES`; anything else with a code is fatal. libpq gives
    no code when it cannot connect or loses the connection (refused, timed out, closed unexpectedly),
    so an OperationalError without one is transient; this includes a server refusing the login itself
    (wrong password, unknown database), which is retried before the run fails with the server's words.
    The server's language does not matter: only codes are read.
    """
    import psycopg

    if not isinstance(orig, psycopg.Error):
        return None
    text = first_line(str(orig))
    state = orig.sqlstate
    if state is None:
        return transient(text) if isinstance(orig, psycopg.OperationalError) else None
    if state.startswith("08"):
        return transient(text, CONNECTION_HINT)
    if state in TRANSIENT_SQLSTATES:
        return transient(text, TRANSIENT_SQLSTATES[state])
    hint = FATAL_HINTS.get(state, "")
    return fatal(text, hint.format(NAME=name.upper(), credentials=credential_variables(name)))


class PgCopyStream(RowStream):
    """A PostgreSQL query as COPY output: the target picks binary (types identical) or text.

    ``type_oids`` are the result's column types, known before any row moves.
    """

    def __init__(
        self,
        columns: list[str],
        type_oids: list[int],
        open_copy: Callable[[str], AbstractContextManager[Any]],
        close: Callable[[], None],
    ) -> None:
        super().__init__(columns, iter(()), close)
        self.type_oids = type_oids
        self._open_copy = open_copy

    def copy_out(self, fmt: str) -> AbstractContextManager[Any]:
        """The source's ``COPY (query) TO STDOUT (FORMAT fmt)``; iterate it for (bytes, rows) batches."""
        return self._open_copy(fmt)


class PostgresConnector(SqlConnector):
    """``postgresql://user@host:5432/db`` (always driven by psycopg 3)."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        read=True, write=True, merge=True, direct_write=True, merge_statement=True
    )
    accepts: ClassVar[frozenset[str]] = frozenset({PGCOPY, ARROW, ROWS})
    kind: ClassVar[str] = "PostgreSQL"
    driver: ClassVar[str | None] = "psycopg"

    def engine_options(self) -> dict[str, Any]:
        """Sessions run in UTC whatever the server's setting, so a naive timestamp loaded into a
        ``timestamptz`` column means the same instant on every server. ``use_native_hstore=False``: no
        hstore values are read or written, so each new connection skips the dialect's hstore lookup
        (a SAVEPOINT, a catalog query and a RELEASE on every engine's first connection)."""
        timeout = int(self.variable("ETL_CONNECT_TIMEOUT", "15") or 15)
        connect_args = {"connect_timeout": timeout, "options": "-c TimeZone=UTC"}
        return {**super().engine_options(), "connect_args": connect_args, "use_native_hstore": False}

    def server_version(self, conn: Connection) -> str:
        version = conn.exec_driver_sql("SHOW server_version").scalar()
        return f"PostgreSQL {version}"

    def classify_driver_error(self, orig: BaseException) -> Verdict | None:
        return classify(orig, self.name)

    # -- reading ------------------------------------------------------------------------------

    def read(self, request: ReadRequest) -> RowStream:
        if PGCOPY in request.accept:
            return self._copy_stream(request)
        return super().read(request)

    def _copy_stream(self, request: ReadRequest) -> PgCopyStream:
        """The windowed query as COPY output. COPY takes no server-side parameters, so psycopg
        merges the bound values into the statement client-side, with its own literal adaptation."""
        stmt, params = self.select_for(request)
        compiled = stmt.compile(dialect=self.dialect)
        sql = str(compiled)
        values = compiled.construct_params(params)
        with self.translate_errors("open"):
            raw = self.engine.raw_connection()
        try:
            with self.translate_errors("describe the query"):
                driver: Any = raw.driver_connection
                cursor = driver.cursor()
                cursor.execute(f"SELECT * FROM ({sql}) AS etl_describe LIMIT 0", values)
                columns = [d.name for d in cursor.description]
                oids = [d.type_code for d in cursor.description]
        except BaseException:
            raw.close()
            raise

        @contextmanager
        def open_copy(fmt: str) -> Iterator[Iterator[tuple[bytearray, int]]]:
            """The source's COPY output as (bytes, rows) batches of about ``WRITE_BYTES``; a failure of
            the source (a restart, a cancel) is translated here, so it names this connection, not the
            target the batches are written to. psycopg merges the bound values into the statement
            client-side (COPY takes no server-side parameters), with its own literal adaptation."""
            from psycopg import ClientCursor

            from connectors.pg_copy_out import CopyOut

            with self.translate_errors("read (COPY TO)"):
                query = ClientCursor(driver).mogrify(f"COPY ({sql}) TO STDOUT (FORMAT {fmt})", values)
                copy = CopyOut(driver, query, WRITE_BYTES)

            def batches() -> Iterator[tuple[bytearray, int]]:
                with self.translate_errors("read (COPY TO)"):
                    yield from copy.batches()

            yield batches()

        def close() -> None:
            cursor.close()
            raw.close()

        return PgCopyStream(columns, oids, open_copy, close)

    # -- writing ------------------------------------------------------------------------------

    def copy_into(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        stream: RowStream,
        cursor: str | None,
        progress: Progress,
    ) -> LoadStats:
        if isinstance(stream, PgCopyStream):
            return self._pass_through(conn, table, columns, stream, progress)
        if isinstance(stream, ArrowStream):
            return self._copy_arrow(conn, table, columns, stream, cursor, progress)
        return super().copy_into(conn, table, columns, stream, cursor, progress)

    def bulk_write(self, conn: Connection, table: Table, columns: Sequence[str], chunks: Iterator[Chunk]) -> None:
        """Python rows: ``COPY ... FROM STDIN`` in text format, psycopg adapting each value."""
        cursor, copy_cm = self._copy_in(conn, table, columns, "text")
        with cursor, copy_cm as copy:
            for chunk in chunks:
                for row in chunk:
                    copy.write_row(row)

    def _pass_through(
        self, conn: Connection, table: Table, columns: Sequence[str], stream: PgCopyStream, progress: Progress
    ) -> LoadStats:
        """COPY TO -> COPY FROM byte batches. Binary when every column's type is identical on both
        sides (the fastest, and exact); text otherwise, where PostgreSQL casts each value. (A second
        writer thread, as on the Arrow path, measured 5% slower here: both ends are libpq.)"""
        fmt = "binary" if stream.type_oids == self._type_oids(conn, table, columns) else "text"
        cursor, copy_in_cm = self._copy_in(conn, table, columns, fmt)
        with cursor:
            with copy_in_cm as copy_in, stream.copy_out(fmt) as batches:
                for buffer, rows in batches:
                    copy_in.write(buffer)
                    progress.advance(rows)
            rows = int(cursor.rowcount)
        return LoadStats(rows=rows, exact_range=False, path=f"COPY pass-through ({fmt})")

    def _copy_arrow(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        stream: ArrowStream,
        cursor: str | None,
        progress: Progress,
    ) -> LoadStats:
        """Arrow batches -> ``COPY ... (FORMAT binary)`` encoded by pgpq when every column has an exact
        binary form for its target's type (see :mod:`connectors.pg_binary`); else CSV bytes (pyarrow,
        in C++) -> ``COPY ... (FORMAT csv)``, where pyarrow quotes every string, so NULL (empty,
        unquoted) and '' ("") stay apart; else (binary or nested values and no pgpq) Python rows.

        A second thread writes to PostgreSQL while this one reads and encodes the next rows; batches
        are encoded in slices of ``CSV_SLICE_ROWS`` so the queued bytes stay a few MB whatever the
        batch size."""
        from connectors.pg_binary import binary_encoder

        preparer = conn.dialect.identifier_preparer
        binary = binary_encoder(conn, preparer.format_table(table), columns, stream.schema, self.name)
        if binary is None and not _csv_safe(stream):
            return super().copy_into(conn, table, columns, stream, cursor, progress)
        import pyarrow.compute as pc

        encode = binary.encode if binary is not None else _csv_encoder()
        index = [c.lower() for c in stream.columns].index(cursor.lower()) if cursor else None
        fmt = "binary" if binary is not None else "csv"
        stats = LoadStats(path=f"Arrow -> COPY ({fmt})")
        copy_cursor, copy_cm = self._copy_in(conn, table, columns, fmt)
        with copy_cursor, copy_cm as copy, queued_writes(copy.write, depth=QUEUED_SLICES) as write:
            if binary is not None:
                write(binary.header())
            for batch in stream.batches():
                for offset in range(0, batch.num_rows, CSV_SLICE_ROWS):
                    data = encode(batch.slice(offset, CSV_SLICE_ROWS))
                    if len(data):  # pgpq hands its bytes over about 2 MB at a time, empty in between
                        write(data)
                stats.rows += batch.num_rows
                if index is not None and batch.num_rows:
                    bounds = pc.min_max(batch.column(index))
                    stats.widen(bounds["min"].as_py(), bounds["max"].as_py())
                progress.advance(batch.num_rows)
            if binary is not None:
                write(binary.finish())
        return stats

    def _copy_in(self, conn: Connection, table: Table, columns: Sequence[str], fmt: str) -> tuple[Any, Any]:
        """A cursor on the transaction's own connection and its ``COPY ... FROM STDIN`` (enter both;
        the cursor's rowcount says how many rows the COPY wrote)."""
        preparer = conn.dialect.identifier_preparer
        column_list = ", ".join(preparer.quote(c) for c in columns)
        options = "" if fmt == "text" else f" (FORMAT {fmt})"
        cursor = dbapi_connection(conn).cursor()
        return cursor, cursor.copy(f"COPY {preparer.format_table(table)} ({column_list}) FROM STDIN{options}")

    def _type_oids(self, conn: Connection, table: Table, columns: Sequence[str]) -> list[int]:
        """The type oid of each of ``columns`` in ``table`` (a temporary table included)."""
        preparer = conn.dialect.identifier_preparer
        rows = conn.exec_driver_sql(
            "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %(table)s::regclass AND attnum > 0",
            {"table": preparer.format_table(table)},
        ).all()
        by_name = {name: oid for name, oid in rows}
        return [int(by_name[c]) for c in columns]

    # -- strategies ---------------------------------------------------------------------------

    def truncate(self, conn: Connection, table: Table) -> None:
        preparer = conn.dialect.identifier_preparer
        conn.exec_driver_sql(f"TRUNCATE TABLE {preparer.format_table(table)}")

    def empty_for_reload(self, conn: Connection, table: Table) -> Sequence[str]:
        """TRUNCATE, then drop the table's indexes and return the statements that build them again.

        One sort of the new rows builds an index faster than COPY keeps it up to date row by row (a
        primary key on 1M rows: the COPY and the build together take about 30% less of the server's
        CPU). It all happens inside the load's transaction: a failure or a kill rolls the drop back
        with the rows, and no other session can see the table without its indexes (TRUNCATE holds
        its ACCESS EXCLUSIVE lock until the commit). An index is left in place when building it
        again could differ from the original: a foreign key or replica identity uses it, it is
        clustered, partitioned, invalid, commented or in its own tablespace, or it backs an
        exclusion constraint; and nothing is dropped when this role does not own the table."""
        self.truncate(conn, table)
        preparer = conn.dialect.identifier_preparer
        name = preparer.format_table(table)
        rows = conn.exec_driver_sql(_REBUILDABLE_INDEXES, {"table": name}).all()
        drop: list[str] = []
        build: list[str] = []
        for constraint, index_name, definition in rows:
            if constraint is not None:
                quoted = preparer.quote(constraint)
                drop.append(f"ALTER TABLE {name} DROP CONSTRAINT {quoted}")
                build.append(f"ALTER TABLE {name} ADD CONSTRAINT {quoted} {definition}")
            else:
                drop.append(f"DROP INDEX {index_name}")
                build.append(definition)
        for statement in drop:
            conn.exec_driver_sql(statement)
        return build

    def temp_table_options(self) -> Mapping[str, Any]:
        return {"prefixes": ["TEMPORARY"], "postgresql_on_commit": "DROP"}

    def analyze_stage(self, conn: Connection, stage: Table) -> None:
        """Autovacuum never sees a temporary table: without this the planner guesses the staged rows'
        count and keys, and hashes every key of the target to merge a few rows."""
        conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.format_table(stage)}")

    def has_merge_statement(self, conn: Connection) -> bool:
        return (conn.dialect.server_version_info or (0,)) >= (15,)

    def merge_from_stage(
        self, conn: Connection, table: Table, staging: Table, columns: Sequence[str], keys: Sequence[str]
    ) -> int:
        """One statement: see :func:`merge_statement`."""
        preparer = conn.dialect.identifier_preparer
        statement, how = merge_statement(
            conn, preparer.format_table(table), preparer.format_table(staging), columns, keys
        )
        logger.info("merge into %s: %s", table.name, how)
        return int(conn.exec_driver_sql(statement).rowcount)


def merge_statement(
    conn: Connection, target: str, stage: str, columns: Sequence[str], keys: Sequence[str]
) -> tuple[str, str]:
    """The statement that merges ``stage`` into ``target`` (both already quoted), keys checked unique
    and not NULL in the stage beforehand.

    When ``keys`` are exactly the columns of a unique index of the target (its primary key, say) and the
    staged rows are a small share of the table (:data:`SMALL_SHARE`, by size on disk, which needs no
    statistics), ``INSERT ... ON CONFLICT (keys) DO UPDATE``: one probe of that index per staged row,
    so the cost follows the change, not the table. Otherwise one ``MERGE`` (PostgreSQL 15 and later),
    which the planner runs as a hash join over the whole table: the cheaper plan for a large share,
    and the only one without a unique index. Returns the statement and, in words, which it is."""
    q = conn.dialect.identifier_preparer.quote
    updated = [c for c in columns if c not in keys]
    names = ", ".join(q(c) for c in columns)
    if _probe_key_index(conn, target, stage, keys):
        action = f"UPDATE SET {', '.join(f'{q(c)} = EXCLUDED.{q(c)}' for c in updated)}" if updated else "NOTHING"
        conflict = ", ".join(q(k) for k in keys)
        return (  # in key order: the index and the table are walked forwards, and rows locked in one order
            f"INSERT INTO {target} ({names}) SELECT {names} FROM {stage} ORDER BY {conflict} "
            f"ON CONFLICT ({conflict}) DO {action}",
            f"INSERT ... ON CONFLICT ({conflict}): the staged rows probe the table's unique index",
        )
    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in keys)
    matched = f"UPDATE SET {', '.join(f'{q(c)} = s.{q(c)}' for c in updated)}" if updated else "DO NOTHING"
    values = ", ".join(f"s.{q(c)}" for c in columns)
    statement = (
        f"MERGE INTO {target} AS t USING {stage} AS s ON {on} "
        f"WHEN MATCHED THEN {matched} WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    )
    return statement, "one MERGE (no unique index on the keys, or the staged rows are a large share)"


SMALL_SHARE = 0.1  # staged bytes / table bytes up to which probing the key index beats one hash join

# Whether the target has a unique index on exactly ``keys`` that ON CONFLICT can name (valid, not
# deferrable, not partial, no expressions; INCLUDE columns do not count), and the two sizes on disk.
KEY_INDEX_SQL = """
SELECT pg_relation_size(%(target)s::regclass), pg_relation_size(%(stage)s::regclass),
       EXISTS (
           SELECT 1 FROM pg_index AS i
           WHERE i.indrelid = %(target)s::regclass AND i.indisunique AND i.indisvalid AND i.indimmediate
             AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = cardinality(%(keys)s::text[])
             AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text COLLATE "C")
                  FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                  JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE k.n <= i.indnkeyatts) = %(keys)s::text[]
       )
"""


def _probe_key_index(conn: Connection, target: str, stage: str, keys: Sequence[str]) -> bool:
    """Whether ``INSERT ... ON CONFLICT`` on the target's unique key index is the cheaper merge (one query)."""
    params = {"target": target, "stage": stage, "keys": sorted(keys)}
    table_bytes, stage_bytes, unique = conn.exec_driver_sql(KEY_INDEX_SQL, params).one()
    return bool(unique) and stage_bytes <= SMALL_SHARE * table_bytes


# The indexes of a table that a reload may drop and build again after its rows are in, in one catalog
# query: (constraint name or NULL, the index as regclass text, the constraint's or the index's
# definition). Primary keys and unique constraints first (they are built by ADD CONSTRAINT).
_REBUILDABLE_INDEXES = """
SELECT c.conname, i.indexrelid::regclass::text,
       CASE WHEN c.oid IS NULL THEN pg_get_indexdef(i.indexrelid) ELSE pg_get_constraintdef(c.oid) END
  FROM pg_index i
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_class x ON x.oid = i.indexrelid
  LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
 WHERE i.indrelid = %(table)s::regclass
   AND t.relkind = 'r' AND pg_has_role(t.relowner, 'USAGE')
   AND i.indisvalid AND i.indisready AND NOT i.indisclustered AND NOT i.indisreplident
   AND x.reltablespace = 0
   AND (c.oid IS NULL OR c.contype IN ('p', 'u'))
   AND obj_description(i.indexrelid, 'pg_class') IS NULL
   AND (c.oid IS NULL OR obj_description(c.oid, 'pg_constraint') IS NULL)
   AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid OR h.inhparent = i.indexrelid)
   AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)
 ORDER BY c.oid IS NULL, i.indexrelid
"""


def _csv_encoder() -> Callable[[Any], Any]:
    """A function formatting an Arrow batch as CSV without a header (bytes PostgreSQL's CSV reads)."""
    import pyarrow.csv as pacsv

    options = pacsv.WriteOptions(include_header=False)

    def encode(batch: Any) -> Any:
        buffer = io.BytesIO()
        pacsv.write_csv(batch, buffer, options)
        return buffer.getbuffer()

    return encode


def _csv_safe(stream: ArrowStream) -> bool:
    """Arrow types whose pyarrow CSV text PostgreSQL parses back exactly (binary and nested do not)."""
    import pyarrow as pa
    import pyarrow.types as t

    schema: pa.Schema = stream.schema
    return all(
        not (
            t.is_binary(f.type)
            or t.is_large_binary(f.type)
            or t.is_fixed_size_binary(f.type)
            or t.is_nested(f.type)
            or t.is_dictionary(f.type)
        )
        for f in schema
    )
