"""The connector interface: what every source or target offers the steps, and its capabilities as data."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from utilities.errors import ConfigError, FatalError
from utilities.secrets import Secret

if TYPE_CHECKING:
    from connectors.columns import SourceColumn
    from connectors.target import LoadSession, LoadTarget

Row = tuple[Any, ...]
Chunk = list[Row]

# Stream kinds a target may accept (ReadRequest.accept); every source can produce ROWS.
ROWS, ARROW, PGCOPY = "rows", "arrow", "pgcopy"


@dataclass(frozen=True)
class TableName:
    """A target table, optionally schema-qualified; quoted by the dialect, never by hand."""

    name: str
    schema: str | None = None

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do, declared as data so the factory can reject a bad plan early."""

    read: bool = True
    write: bool = False  # can be a load target (open_load)
    merge: bool = False  # as a target, can apply the merge strategy (the factory refuses it otherwise)
    sql: bool = True  # sources are SQL queries or tables (False: files, objects, APIs)
    upload: bool = False  # can receive output files (put_file)
    direct_write: bool = False  # as a target, writes rows straight into a table inside the load's transaction
    merge_statement: bool = False  # as a target, runs a merge as one native statement (else delete + insert)


@dataclass(frozen=True)
class ReadRequest:
    """What a step asks a connector to read.

    ``sql`` is the text of the project's query file (bind parameters like ``:start_date``), or None
    when ``table`` names a source table. When ``window_start``/``window_end`` are given together
    with ``cursor``, the connector keeps only rows with ``window_start < cursor <= window_end``.
    ``options`` are the connector-specific keys of the table's ``source:`` block. ``accept`` lists
    the stream kinds the target can take (``rows`` always; ``arrow``, ``pgcopy`` when it can), so
    a source may hand over Arrow batches or raw COPY bytes instead of Python rows.
    """

    sql: str | None = None
    table: Any = None  # config.TableName
    params: Mapping[str, Any] = field(default_factory=dict)
    cursor: str | None = None
    filtered: bool = False
    window_start: Any = None
    window_end: Any = None
    chunk_size: int = 50_000
    options: Mapping[str, Any] = field(default_factory=dict)
    accept: frozenset[str] = frozenset({ROWS})
    keys: tuple[str, ...] = ()  # the target's key columns (a source may split its read on them)
    columns: tuple[str, ...] = ()  # read only these columns, in this order (SQL sources); () = every column


@dataclass(frozen=True)
class Aggregate:
    """One figure of a source window (a precheck's count, a reconciliation's sums): ``count``, or
    ``sum``, ``min`` or ``max`` of a column."""

    func: str
    column: str | None = None

    @property
    def label(self) -> str:
        return self.func if self.column is None else f"{self.func}({self.column})"


@dataclass
class LoadStats:
    """What a load wrote: rows and the cursor's min and max among them.

    ``exact_range`` is False when the writer could not see the values (COPY pass-through); the
    load then reads the range back from what it wrote, inside the same transaction. ``path``
    names the write path taken, for the log.
    """

    rows: int = 0
    data_min: Any = None
    data_max: Any = None
    exact_range: bool = True
    path: str = "rows"

    def widen(self, low: Any, high: Any) -> None:
        """Extend the range with a chunk's min and max (None values are ignored)."""
        if low is not None and (self.data_min is None or low < self.data_min):
            self.data_min = low
        if high is not None and (self.data_max is None or high > self.data_max):
            self.data_max = high


DRIVERS_FILE = "requirements-connectors.txt"


def import_driver(module: str, *, kind: str, connection: str, package: str) -> ModuleType:
    """``module`` (a connector's driver), imported now; a FatalError naming the package to install when
    it, or a module it needs, is missing. Connectors call this on first real use, never at import."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = "" if exc.name in (None, module, package) else f" (missing module {exc.name!r})"
        raise FatalError(
            f"{kind} connection {connection!r}: the driver {package} is not installed{missing}; "
            f"run: pip install -r {DRIVERS_FILE}"
        ) from exc


class RowStream:
    """Rows in bounded chunks: ``columns`` names them, iterating yields lists of tuples.

    Close it (or use it as a context manager) to release the server-side cursor.
    """

    def __init__(self, columns: list[str], chunks: Iterator[Chunk], close: Callable[[], None] | None = None) -> None:
        self.columns = columns
        self._chunks = chunks
        self._close = close

    def __iter__(self) -> Iterator[Chunk]:
        return self._chunks

    def close(self) -> None:
        if self._close is not None:
            close, self._close = self._close, None
            close()

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArrowStream(RowStream):
    """Arrow record batches of at most ``chunk_size`` rows. Iterating it still yields row chunks (for
    targets that take rows); Arrow-aware targets call :meth:`batches` and never build Python rows."""

    def __init__(
        self, columns: list[str], schema: Any, batches: Iterator[Any], close: Callable[[], None] | None = None
    ) -> None:
        super().__init__(columns, (_rows_of(batch) for batch in batches), close)
        self.schema = schema  # pyarrow.Schema
        self._batches = batches

    def batches(self) -> Iterator[Any]:
        """The ``pyarrow.RecordBatch`` objects, in order."""
        return self._batches


def _rows_of(batch: Any) -> Chunk:
    return list(zip(*(column.to_pylist() for column in batch.columns), strict=True))


class Connector(ABC):
    """One configured connection. Drivers are imported on first use, never at module import."""

    capabilities: ClassVar[Capabilities] = Capabilities()
    #: the stream kinds this connector accepts as a target, best first (see ReadRequest.accept)
    accepts: ClassVar[frozenset[str]] = frozenset({ROWS})
    #: the kind shown in messages and the README table, e.g. "PostgreSQL"
    kind: ClassVar[str] = "connector"
    #: loads on several threads may use it at once, each on its own connection (``parallel: N``); else
    #: the loads that use it run one at a time
    shared_by_threads: ClassVar[bool] = False
    #: the database takes one writer at a time (SQLite's file lock): loads into it run one at a time
    single_writer: ClassVar[bool] = False

    def __init__(self, name: str, url: Secret, home: Path, variables: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.url = url
        self.home = home
        self._variables = dict(variables or {})

    def setting(self, key: str, default: str | None = None) -> str | None:
        """Connector setting ``ETL_CONN_<NAME>_<KEY>`` (e.g. ``ETL_CONN_LAKE_SECRET_ACCESS_KEY``).

        Connectors never read ``os.environ``: the runner hands them the merged environment (process
        environment over ``.env`` files). Wrap secret values in ``Secret`` before keeping them.
        """
        value = self._variables.get(f"ETL_CONN_{self.name.upper()}_{key.upper()}")
        return value if value not in (None, "") else default

    def variable(self, key: str, default: str | None = None) -> str | None:
        """A driver's own standard variable (e.g. ``AWS_REGION``) from the same merged environment."""
        value = self._variables.get(key)
        return value if value not in (None, "") else default

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and the audit row."""
        from utilities.secrets import Masker

        return Masker()(self.url.reveal())

    @property
    def database_name(self) -> str:
        """The name of the database or bucket, for the audit row's target_database."""
        return self.name

    @abstractmethod
    def read(self, request: ReadRequest) -> RowStream:
        """Stream the rows ``request`` asks for, in chunks of at most ``request.chunk_size``."""

    def describe_read(self, request: ReadRequest) -> str:
        """What :meth:`read` would run, for ``--dry-run`` (the SQL, or the object listing)."""
        return f"read from {self.kind} connection {self.name!r}"

    @classmethod
    def validate_source(cls, options: Mapping[str, Any], where: str) -> None:
        """Reject a table's ``source:`` keys this connector does not know (called by the factory,
        before anything connects). SQL connectors take only ``query`` or ``table``."""
        if options:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(options))} for a {cls.kind} source")

    def describe_columns(self, request: ReadRequest) -> tuple[SourceColumn, ...]:
        """The columns ``request`` would read, with their portable types (connectors/columns.py), without
        reading rows; used to create and evolve target tables. Sources that cannot raise FatalError."""
        raise FatalError(
            f"{self.kind} connection {self.name!r} cannot describe its columns; write the target table's DDL "
            f"(ddl: in project.yml) and set create: false on the table"
        )

    def list_tables(self, schema: str | None = None) -> list[TableName]:
        """The tables (and views) of ``schema`` (the default one when None), sorted; for ``tables:``
        patterns and ``--new``. Sources without a catalog raise FatalError."""
        raise FatalError(f"{self.kind} connection {self.name!r} has no catalog of tables to list")

    def primary_key(self, table: TableName) -> tuple[str, ...]:
        """The primary key columns of a source ``table`` (empty when it has none or the source cannot tell)."""
        return ()

    def aggregate(self, request: ReadRequest, aggregates: Sequence[Aggregate]) -> dict[str, Any]:
        """The ``aggregates`` of what ``request`` would read, computed by the source in one bound query,
        by label (``count``, ``sum(amount)``...). Sources that cannot compute them raise FatalError."""
        raise FatalError(f"{self.kind} connection {self.name!r} cannot compute a count or sums of a source")

    def open_load(self, target: LoadTarget) -> AbstractContextManager[LoadSession]:
        """A session that applies a load's operations to ``target.table`` atomically (targets only)."""
        raise FatalError(f"{self.kind} connection {self.name!r} cannot be a load target")

    def put_file(self, path: Path, name: str) -> str:
        """Upload a finished output file as ``name``; returns where it went (destinations only)."""
        raise FatalError(f"{self.kind} connection {self.name!r} cannot receive output files")

    @abstractmethod
    def check(self) -> str:
        """Connect and return the server's version string; raise FatalError or TransientError."""

    def close(self) -> None:  # noqa: B027 - optional hook: most connectors hold nothing to release
        """Release pooled connections."""
