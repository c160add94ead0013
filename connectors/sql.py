"""SQL databases through SQLAlchemy: streaming reads, the window predicate, error translation, writes.

Dialect modules (postgresql, mysql, sqlite) subclass :class:`SqlConnector` and override only what
differs: the URL normalisation, the bulk write path, the version query.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import (
    Aggregate,
    Capabilities,
    Chunk,
    Connector,
    LoadStats,
    ReadRequest,
    RowStream,
    TableName,
)
from connectors.driver_errors import Verdict, classify_sqlalchemy, translating
from connectors.target import LoadSession, LoadTarget, Tracker
from utilities.errors import ConfigError, FatalError
from utilities.sql_text import strip_comments

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Table
    from sqlalchemy.sql import Executable

    from connectors.columns import SourceColumn
    from connectors.schema import SchemaPlan, SchemaStep
    from utilities.progress import Progress


class MissingTableError(FatalError):
    """The table a description was asked of does not exist (a load creates a missing target)."""


logger = logging.getLogger(__name__)

READONLY = "etl_readonly"  # execution option for connections that only read (SQLite: deferred BEGIN)
_ENGINE_LOCK = threading.Lock()  # loads on several threads (parallel: N) create one engine per connector


class SqlConnector(Connector):
    """A SQLAlchemy-backed database: source always, target when ``capabilities.write``."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=True, merge=True, direct_write=True)
    kind: ClassVar[str] = "SQL database"
    #: the SQLAlchemy driver this connector uses, e.g. "psycopg"; None keeps the URL's own
    driver: ClassVar[str | None] = None
    #: each load checks out its own connection from the engine's pool
    shared_by_threads: ClassVar[bool] = True

    #: drops the temporary staging table (never a permanent table of the same name, never committing)
    DROP_STAGE: ClassVar[str] = "DROP TABLE {}"
    #: a temporary table created in a transaction that rolls back is still there (MySQL)
    STAGE_SURVIVES_ROLLBACK: ClassVar[bool] = False
    #: CREATE and ALTER TABLE run inside a transaction and roll back with it (not on MySQL)
    TRANSACTIONAL_DDL: ClassVar[bool] = True

    _engine: Engine | None = None
    _pinned: Connection | None = None

    # -- connection ---------------------------------------------------------------------------

    def sqlalchemy_url(self) -> Any:
        """The SQLAlchemy URL object with this connector's driver (the password stays inside). The URL's
        own password wins; without one, ``ETL_CONN_<NAME>_PASSWORD`` supplies it (never shown: the URL
        object masks it, and the settings' masker hides it in every log line)."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(self.url.reveal())
        except ArgumentError:
            raise ConfigError(f"connection {self.name!r}: {self.safe_url!r} is not a valid SQLAlchemy URL") from None
        if self.driver:
            backend = url.get_backend_name()
            url = url.set(drivername=f"{'mysql' if backend == 'mariadb' else backend}+{self.driver}")
        password = self.setting("PASSWORD")
        if password and not url.password and url.get_backend_name() != "sqlite":
            url = url.set(password=password)
        return url

    def engine_options(self) -> dict[str, Any]:
        """``max_overflow=-1``: the pool lends as many connections as the run's threads ask for (two or
        three per table loading at once, ``parallel: N``) instead of making the last ones wait."""
        return {"pool_pre_ping": True, "max_overflow": -1}

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, created on first use (this imports the driver)."""
        if self._engine is None:
            with _ENGINE_LOCK:
                if self._engine is None:
                    self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        from sqlalchemy import create_engine

        try:
            engine = create_engine(self.sqlalchemy_url(), **self.engine_options())
        except ModuleNotFoundError as exc:
            raise FatalError(
                f"connection {self.name!r}: the driver module {exc.name!r} is not installed; "
                f"run: pip install -r requirements.txt"
            ) from exc
        self.on_engine(engine)
        return engine

    def on_engine(self, engine: Engine) -> None:
        """Hook for dialect set-up (event listeners, pragmas)."""

    @property
    def dialect(self) -> Any:
        """The SQLAlchemy dialect, without connecting (for rendering SQL in ``--dry-run``)."""
        if self._engine is not None:
            return self._engine.dialect
        return self.sqlalchemy_url().get_dialect()()

    @property
    def database_name(self) -> str:
        return self.sqlalchemy_url().database or self.name

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def check(self) -> str:
        with self.translate_errors("connect"), self.engine.connect() as conn:
            return self.server_version(conn)

    def server_version(self, conn: Connection) -> str:
        info = conn.dialect.server_version_info
        return f"{self.kind} {'.'.join(str(p) for p in info)}" if info else self.kind

    @contextmanager
    def translate_errors(self, action: str) -> Iterator[None]:
        """Driver and SQLAlchemy errors -> TransientError or FatalError by the driver's error code (see
        :meth:`classify_driver_error`), one line naming the connection and the action, cause kept."""
        with translating(self, action, self.classify_error):
            yield

    def classify_error(self, exc: BaseException) -> Verdict | None:
        """The verdict for ``exc`` raised through SQLAlchemy or, on the bulk paths, by the driver itself."""
        dbapi = self._engine.dialect.loaded_dbapi if self._engine is not None else None
        return classify_sqlalchemy(exc, self.classify_driver_error, getattr(dbapi, "Error", None))

    def classify_driver_error(self, orig: BaseException) -> Verdict | None:
        """The dialect's verdict for its driver's exception, by error code; None leaves it to the generic
        rule (fatal, or transient when SQLAlchemy saw the connection drop). Dialects override this."""
        return None

    # -- reading ------------------------------------------------------------------------------

    def select_for(self, request: ReadRequest) -> tuple[Any, dict[str, Any]]:
        """The statement and bind values that read ``request``: the query or table, windowed."""
        from sqlalchemy import bindparam, column, literal_column, select, table, text

        params = dict(request.params)
        if request.sql is not None:
            query = text(strip_comments(request.sql))
            wanted = set(query.compile(dialect=self.dialect).params)
            params = {k: v for k, v in params.items() if k in wanted}
            query = query.bindparams(**params)  # the values travel with the statement (literal-safe paths)
            if not (request.filtered and request.cursor) and not request.columns:
                return query, params
            source: Any = query.columns(*[column(c) for c in _named(request)]).subquery("src")
        else:
            name = request.table
            source = table(name.name, *[column(c) for c in _named(request)], schema=name.schema)
            params = {}
        picked = [source.c[c] for c in request.columns] if request.columns else [literal_column("*")]
        stmt: Any = select(*picked).select_from(source)
        if request.filtered and request.cursor:
            cursor = source.c[request.cursor]
            stmt = stmt.where(cursor > bindparam("window_start", request.window_start))
            if request.window_end is not None:
                stmt = stmt.where(cursor <= bindparam("window_end", request.window_end))
        return stmt, params

    def aggregate(self, request: ReadRequest, aggregates: Sequence[Aggregate]) -> dict[str, Any]:
        """``SELECT count(*), sum(c)... FROM (<the windowed read>)``: one query, values bound."""
        from sqlalchemy import TextClause, func, literal_column, select

        stmt, params = self.select_for(request)
        source = (stmt.columns() if isinstance(stmt, TextClause) else stmt).subquery("etl_window")
        quote = self.dialect.identifier_preparer.quote
        figures = [
            func.count() if a.column is None else getattr(func, a.func)(literal_column(quote(a.column)))
            for a in aggregates
        ]
        query = select(*[f.label(f"f{i}") for i, f in enumerate(figures)]).select_from(source)
        with self.translate_errors("aggregate the source's window"), self.read_connection() as conn:
            row = conn.execute(query, params).one()
        return {a.label: value for a, value in zip(aggregates, row, strict=True)}

    # -- describing (create and evolve targets) and the catalog ----------------------------------

    def describe_columns(self, request: ReadRequest) -> tuple[SourceColumn, ...]:
        """The source table's reflected columns, or those of the query (a temporary view of it, with
        its parameters as NULL, inside a transaction rolled back), as portable types."""
        from connectors.columns import SourceColumn

        with self.translate_errors("describe the source's columns"), self.engine.connect() as conn:
            trans = conn.begin()
            try:
                if request.sql is None:
                    described = self.describe_table(conn, request.table)
                else:
                    described = self.describe_query(conn, request.sql)
            finally:
                trans.rollback()
        return tuple(SourceColumn(name, kind, nullable) for name, kind, nullable in described)

    def describe_table(
        self, conn: Connection, name: Any, convert: Callable[[Any], Any] | None = None
    ) -> list[tuple[str, Any, bool]]:
        """``(name, portable type, nullable)`` of each column of a table (``convert``: the reflected type
        to the portable one; the source's rules by default)."""
        from sqlalchemy import inspect
        from sqlalchemy.exc import NoSuchTableError

        to_portable = convert or self.portable_type
        try:
            columns = inspect(conn).get_columns(name.name, schema=name.schema)
        except NoSuchTableError:
            missing = f"{self.kind} connection {self.name!r}: source table {name} does not exist"
            raise MissingTableError(missing) from None
        return [(c["name"], to_portable(c["type"]), bool(c.get("nullable", True))) for c in columns]

    def existing_columns(self, name: TableName) -> tuple[SourceColumn, ...] | None:
        """A target table's columns as portable types, or None when it does not exist (read on the
        run's pinned connection when there is one, so a table created earlier in the run is seen)."""
        from connectors.columns import SourceColumn, portable

        with self.translate_errors(f"read the columns of {name}"), self.read_connection() as conn:
            try:  # one catalog query, no has_table before it: a missing table has no columns to read
                described = self.describe_table(conn, name, portable)
            except MissingTableError:
                return None
        return tuple(SourceColumn(n, kind, nullable) for n, kind, nullable in described)

    def schema_statements(self, plan: SchemaPlan, existing: Sequence[SourceColumn] = ()) -> list[SchemaStep]:
        """The DDL that applies ``plan`` to this database, as its dialect writes it, one step per statement."""
        from sqlalchemy import Column, Index, MetaData, PrimaryKeyConstraint, Table
        from sqlalchemy.schema import CreateIndex, CreateTable

        from connectors.schema import SchemaStep

        dialect = self.dialect
        preparer = dialect.identifier_preparer
        statements: list[SchemaStep] = []
        if plan.create:
            keys = {k.lower() for k in plan.keys}
            columns = [
                Column(
                    c.name,
                    self.key_type(c.type) if c.name.lower() in keys else c.type,
                    nullable=c.name.lower() not in keys,
                    autoincrement=False,  # the source gives the values: no serial, no identity
                )
                for c in plan.create
            ]
            spelled = {c.name.lower(): c.name for c in plan.create}
            args: list[Any] = [*columns]
            if plan.keys:
                args.append(PrimaryKeyConstraint(*[spelled[k.lower()] for k in plan.keys]))
            table = Table(plan.table.name, MetaData(), *args, schema=plan.table.schema)
            statements.append(SchemaStep("create", None, _one_line(CreateTable(table).compile(dialect=dialect))))
            if plan.cursor and plan.cursor.lower() not in keys:
                cursor = table.c[spelled[plan.cursor.lower()]]
                if self.can_index(cursor.type):
                    index = Index(f"ix_{plan.table.name}_{cursor.name}"[:63], cursor)
                    ddl = _one_line(CreateIndex(index).compile(dialect=dialect))
                    statements.append(SchemaStep("create_index", cursor.name, ddl))
            return statements
        target = preparer.format_table(Table(plan.table.name, MetaData(), schema=plan.table.schema))
        for column in plan.add:
            kind = column.type.compile(dialect=dialect)
            ddl = f"ALTER TABLE {target} ADD COLUMN {preparer.quote(column.name)} {kind}"
            statements.append(SchemaStep("add_column", column.name, ddl))
        nullable = {c.name.lower(): c.nullable for c in existing}
        for widening in plan.widen:
            statement = self.widen_statement(target, preparer.quote(widening.column), widening.new, dialect)
            if statement is not None:
                if not nullable.get(widening.column.lower(), True):
                    statement += self.NOT_NULL_SUFFIX
                statements.append(SchemaStep("widen", widening.column, statement))
        return statements

    #: appended to a widening statement of a NOT NULL column where the statement would drop it (MySQL)
    NOT_NULL_SUFFIX: ClassVar[str] = ""

    def widen_statement(self, table: str, column: str, kind: Any, dialect: Any) -> str | None:
        """``ALTER TABLE ... ALTER COLUMN ... TYPE ...``; None where the database needs none (SQLite)."""
        return f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {kind.compile(dialect=dialect)}"

    def key_type(self, kind: Any) -> Any:
        """The type of a primary key column made from ``kind`` (MySQL cannot key a TEXT column)."""
        return kind

    def can_index(self, kind: Any) -> bool:
        return True

    def describe_query(self, conn: Connection, sql: str) -> list[tuple[str, Any, bool]]:
        """The query's columns: a temporary view of it (parameters as NULL) reflected, then dropped."""
        name = "_etl_describe"
        quoted = conn.dialect.identifier_preparer.quote(name)
        conn.exec_driver_sql(f"CREATE TEMPORARY VIEW {quoted} AS {self._literal_query(conn, sql)}")
        try:
            return self.describe_table(conn, _Named(name))
        finally:
            conn.exec_driver_sql(f"DROP VIEW {quoted}")

    def _literal_query(self, conn: Connection, sql: str) -> str:
        """The query with every parameter as NULL, as the dialect writes it (for a view or CTAS)."""
        from sqlalchemy import text

        query = text(strip_comments(sql))
        wanted = set(query.compile(dialect=conn.dialect).params)
        query = query.bindparams(**dict.fromkeys(wanted))
        return str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})).strip().rstrip(";")

    def portable_type(self, kind: Any) -> Any:
        """The portable type for a type reflected from this database (see connectors/columns.py)."""
        from connectors.columns import portable

        return portable(kind)

    def list_tables(self, schema: str | None = None) -> list[TableName]:
        from sqlalchemy import inspect

        with self.translate_errors("list the source's tables"), self.engine.connect() as conn:
            inspector = inspect(conn)
            names = [*inspector.get_table_names(schema=schema), *inspector.get_view_names(schema=schema)]
        return [TableName(n, schema) for n in sorted(set(names))]

    def primary_key(self, table: TableName) -> tuple[str, ...]:
        from sqlalchemy import inspect

        with self.translate_errors(f"read the primary key of {table}"), self.engine.connect() as conn:
            constraint = inspect(conn).get_pk_constraint(table.name, schema=table.schema)
        return tuple(constraint.get("constrained_columns") or ())

    def describe_read(self, request: ReadRequest) -> str:
        """The read compiled in this connector's dialect, with its bound values. Under ``--dry-run`` the
        text comes from connectors/read_text.py's store when this read was compiled before (no SQLAlchemy
        import); it is kept only for connectors that compile reads as this class does."""
        from connectors import read_text

        plain = all(getattr(type(self), m) is getattr(SqlConnector, m) for m in ("select_for", "dialect"))
        name = read_text.key(self, request) if plain else None
        kept = read_text.lookup(name)
        shown = kept.shown(request) if kept is not None else None
        if shown is not None:
            return shown
        stmt, params = self.select_for(request)
        compiled = stmt.compile(dialect=self.dialect)
        values = {**params, **{k: v for k, v in compiled.params.items() if k.startswith("window_")}}
        bound = ", ".join(f"{k}={v!r}" for k, v in values.items())
        text = f"{str(compiled).strip()}\n-- bound: {bound or '(none)'}"
        if name is not None:
            entry = read_text.verified(str(compiled).strip(), params, compiled.params)
            if entry.shown(request) == text:
                read_text.store(name, entry)
        return text

    def prepare_read(self, conn: Connection, stmt: Executable, params: Mapping[str, Any]) -> Executable:
        """Hook: adjust the read statement once connected (Oracle rewrites zoned timestamps to UTC)."""
        return stmt

    def convert_rows(self, description: Sequence[Any], request: ReadRequest) -> Callable[[Chunk], Chunk] | None:
        """Hook: a function that fixes each chunk of the driver's values, given the result's DB-API
        ``description`` (MySQL: BIT, zero dates, TIME), or None when the values need nothing."""
        return None

    def read(self, request: ReadRequest) -> RowStream:
        stmt, params = self.select_for(request)
        with self.translate_errors("open"):
            conn = self.engine.connect()
        try:
            with self.translate_errors("query"):
                stmt = self.prepare_read(conn, stmt, params)
                options = {"stream_results": True, "yield_per": request.chunk_size, READONLY: True}
                result = conn.execution_options(**options).execute(stmt, params)
            columns = list(result.keys())
            convert = self.convert_rows(result.cursor.description if result.cursor is not None else (), request)
        except BaseException:
            conn.close()
            raise

        def chunks() -> Iterator[Chunk]:
            with self.translate_errors("read"):
                for part in result.partitions(request.chunk_size):
                    rows = [tuple(row) for row in part]
                    yield convert(rows) if convert is not None else rows

        def close() -> None:
            result.close()
            conn.close()

        return RowStream(columns, chunks(), close)

    # -- writing (targets) --------------------------------------------------------------------

    @contextmanager
    def open_load(self, target: LoadTarget) -> Iterator[LoadSession]:
        """The load's operations in one transaction (a savepoint of the run's transaction when one is
        pinned): committed when the block ends cleanly, rolled back on any error. The staging table
        never outlives the load."""
        from connectors.sql_load import SqlLoadSession

        if target.ddl and not self.TRANSACTIONAL_DDL:
            with self.translate_errors(f"change table {target.table}"), self.engine.begin() as ddl:
                for statement in target.ddl:  # MySQL commits DDL at once: run it apart from the load
                    ddl.exec_driver_sql(statement)
        with self.translate_errors(f"load into {target.table}"), self._connection() as conn:
            session: SqlLoadSession | None = None
            try:
                with self._begin(conn):
                    if self.TRANSACTIONAL_DDL:
                        for statement in target.ddl:  # created or altered inside the load's transaction
                            conn.exec_driver_sql(statement)
                    session = SqlLoadSession(self, conn, target)
                    yield session
                    session.rows_in()  # nothing owed is left out of the commit
                    if session.stage is not None:
                        self.drop_stage(conn, session.stage)
            except BaseException:
                if session is not None and session.stage is not None and self.STAGE_SURVIVES_ROLLBACK:
                    self._drop_stage_after_rollback(conn, session.stage)
                raise

    # -- the run's own transaction (publish: run) ---------------------------------------------------

    def pin(self, conn: Connection | None) -> None:
        """Make ``conn``, inside a transaction the caller commits or rolls back, the connection of every
        write and read of this connector (``publish: run``); None ends it."""
        self._pinned = conn

    @property
    def pinned(self) -> bool:
        return self._pinned is not None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside a transaction for a block of writes: committed when the block ends cleanly,
        rolled back on an error. With a pinned run transaction, a savepoint of it instead (released or
        rolled back; the run commits)."""
        with self._connection() as conn, self._begin(conn):
            yield conn

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A connection for reading only (on SQLite it does not take the write lock); the pinned one
        when the run holds a transaction, so its reads see what it wrote."""
        if self._pinned is not None:
            yield self._pinned
            return
        with self.engine.connect().execution_options(**{READONLY: True}) as conn:
            yield conn

    def _connection(self) -> AbstractContextManager[Connection]:
        return nullcontext(self._pinned) if self._pinned is not None else self.engine.connect()

    def _begin(self, conn: Connection) -> AbstractContextManager[Any]:
        return conn.begin_nested() if self._pinned is not None else conn.begin()

    def reflect(self, conn: Connection, name: Any) -> Table:
        """The target table as it is in the database; FatalError naming it if it does not exist."""
        from sqlalchemy import Column, MetaData, Table, inspect
        from sqlalchemy.exc import NoSuchTableError

        try:  # the columns are all a load uses: one catalog query, not a full reflection (keys, indexes...)
            columns = inspect(conn).get_columns(name.name, schema=name.schema)
            shaped = [Column(c["name"], c["type"], nullable=bool(c.get("nullable", True))) for c in columns]
            return Table(name.name, MetaData(), *shaped, schema=name.schema)
        except NoSuchTableError:
            raise FatalError(
                f"target table {name} does not exist in {self.kind} connection {self.name!r}; "
                f"create it with a DDL file listed under ddl: in project.yml"
            ) from None

    def copy_into(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        stream: RowStream,
        cursor: str | None,
        progress: Progress,
    ) -> LoadStats:
        """Write ``stream`` into ``table`` inside the caller's transaction; report rows and the
        cursor's range. Targets with faster paths (PostgreSQL COPY) override this."""
        tracker = Tracker(stream, cursor, progress)
        self.bulk_write(conn, table, columns, iter(tracker))
        return tracker.stats

    def analyze_stage(self, conn: Connection, stage: Table) -> None:
        """Give the planner the staging table's statistics once its rows are written (where it helps)."""

    def has_merge_statement(self, conn: Connection) -> bool:
        """Whether this server runs ``merge_from_stage`` (else a merge is delete by key + insert)."""
        return False

    def merge_from_stage(
        self, conn: Connection, table: Table, staging: Table, columns: Sequence[str], keys: Sequence[str]
    ) -> int:
        """Merge ``staging`` into ``table`` in one native statement; returns the rows written."""
        raise FatalError(f"{self.kind} connection {self.name!r} has no MERGE statement")

    def bulk_write(self, conn: Connection, table: Table, columns: Sequence[str], chunks: Iterator[Chunk]) -> None:
        """Write every chunk into ``table`` inside the caller's transaction (executemany here)."""
        from sqlalchemy import insert

        stmt = insert(table)
        for chunk in chunks:
            if chunk:
                conn.execute(stmt, [dict(zip(columns, row, strict=False)) for row in chunk])

    def truncate(self, conn: Connection, table: Table) -> None:
        """Empty ``table`` inside the caller's transaction."""
        conn.execute(table.delete())

    def empty_for_reload(self, conn: Connection, table: Table) -> Sequence[str]:
        """Empty ``table`` for a full reload inside the caller's transaction; the statements to run once
        the new rows are in (a target that builds its indexes after the rows returns them here)."""
        self.truncate(conn, table)
        return ()

    def temp_table_options(self) -> Mapping[str, Any]:
        """Extra ``Table`` keyword arguments for a connection's temporary staging table."""
        return {"prefixes": ["TEMPORARY"]}

    def drop_stage(self, conn: Connection, stage: Table) -> None:
        """Drop the staging table inside the load's transaction (it would outlive a commit)."""
        conn.exec_driver_sql(self.DROP_STAGE.format(conn.dialect.identifier_preparer.format_table(stage)))

    def _drop_stage_after_rollback(self, conn: Connection, stage: Table) -> None:
        """Where a rollback leaves the staging table (MySQL), drop it; if the connection is broken, it is
        discarded instead, and its temporary tables go with it."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            self.drop_stage(conn, stage)
            if self._pinned is None:
                conn.commit()
        except SQLAlchemyError:
            if self._pinned is None:
                conn.invalidate()


def _one_line(ddl: Any) -> str:
    """Compiled DDL on one line (for the log and the ledger); it holds no literal to protect."""
    return " ".join(str(ddl).split()).replace("( ", "(").replace(" )", ")")


class _Named:
    """A bare table name for :meth:`SqlConnector.describe_table` (the temporary view of a query)."""

    def __init__(self, name: str) -> None:
        self.name, self.schema = name, None


def _named(request: ReadRequest) -> list[str]:
    """The columns a read names (``request.columns`` and the cursor), each once, quoted by the dialect."""
    names = [*request.columns, *([request.cursor] if request.cursor else [])]
    return list(dict.fromkeys(names))


def dbapi_connection(conn: Connection) -> Any:
    """The driver's own connection under ``conn`` (for COPY and executemany), inside its transaction."""
    raw = conn.connection.dbapi_connection
    assert raw is not None, "an open SQLAlchemy connection has a driver connection"
    return raw
