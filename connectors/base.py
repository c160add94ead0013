"""The connector interface: what every source or target offers the steps, and its capabilities as data."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from script_factory.errors import ConfigError, FatalError
from utilities.secrets import Secret

if TYPE_CHECKING:
    from script_factory.config import Strategy, TableName
    from script_factory.window import Window
    from utilities.progress import Progress

Row = tuple[Any, ...]
Chunk = list[Row]


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do, declared as data so the factory can reject a bad plan early."""

    read: bool = True
    write: bool = False  # can be a load target (a warehouse)
    merge: bool = False  # supports the merge and delete_insert strategies as a target
    streaming: bool = True  # reads in bounded chunks, never the whole result in memory
    sql: bool = True  # sources are SQL queries or tables (False: files, objects, APIs)
    upload: bool = False  # can receive output files (put_file)


@dataclass(frozen=True)
class ReadRequest:
    """What a step asks a connector to read.

    ``sql`` is the text of the project's query file (bind parameters like ``:start_date``), or None
    when ``table`` names a source table. When ``window_start``/``window_end`` are given together
    with ``cursor``, the connector keeps only rows with ``window_start < cursor <= window_end``.
    ``options`` are the connector-specific keys of the table's ``source:`` block.
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


@dataclass(frozen=True)
class LoadPlan:
    """How a stream is applied to a target table (see script_factory/load_strategies.py)."""

    target: TableName
    strategy: Strategy
    keys: tuple[str, ...]
    cursor: str | None
    window: Window


@dataclass
class LoadStats:
    """What a load wrote: rows and the cursor's min and max among them."""

    rows: int = 0
    data_min: Any = None
    data_max: Any = None


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


class Connector(ABC):
    """One configured connection. Drivers are imported on first use, never at module import."""

    capabilities: ClassVar[Capabilities] = Capabilities()
    #: the kind shown in messages and the README table, e.g. "PostgreSQL"
    kind: ClassVar[str] = "connector"

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

    def write(self, stream: RowStream, plan: LoadPlan, progress: Progress) -> LoadStats:
        """Apply ``stream`` to ``plan.target`` atomically (targets only)."""
        raise FatalError(f"{self.kind} connection {self.name!r} cannot be a load target")

    def put_file(self, path: Path, name: str) -> str:
        """Upload a finished output file as ``name``; returns where it went (destinations only)."""
        raise FatalError(f"{self.kind} connection {self.name!r} cannot receive output files")

    @abstractmethod
    def check(self) -> str:
        """Connect and return the server's version string; raise FatalError or TransientError."""

    def close(self) -> None:  # noqa: B027 - optional hook: most connectors hold nothing to release
        """Release pooled connections."""
