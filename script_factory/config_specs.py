"""The validated project as the engine uses it: frozen dataclasses and enums, with no pydantic.

script_factory/config.py validates project.yml with the pydantic models of config_models.py and
turns the result into these objects; everything after validation (the factory, the steps, ``--dry-run``,
the config cache's pickle) sees only them, so a run whose config comes from the cache never imports
pydantic. Where project.yml has the same shape as the engine's spec (retries, retention, dependencies,
aggregations, functions, reconcile, e-mail), config_models.py has a pydantic dataclass of the same name
and fields that validates it; tests/unit/test_config.py checks that both keep the same fields and defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from connectors.base import TableName
from connectors.schema import OnSchemaChange
from data_quality_checks.thresholds import Threshold, parse_threshold
from script_factory.settings import WAREHOUSE_CONNECTION
from script_factory.transform_spec import TransformSpec

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
DEFAULT_CHUNK_SIZE = 50_000
ANY_FAILING = parse_threshold(">0")  # what severity alone means: any failing row fires it


class Strategy(StrEnum):
    """How a table's rows are applied to the target (see script_factory/load_strategies.py)."""

    APPEND = "append"
    MERGE = "merge"
    REPLACE = "replace"
    DELETE_INSERT = "delete_insert"


class Severity(StrEnum):
    """error: a failing check fails the run (exit code 4); warn: it is only reported."""

    ERROR = "error"
    WARN = "warn"


@dataclass(frozen=True)
class RetrySpec:
    """How often a task that hit a transient error (dropped connection, deadlock...) is tried."""

    attempts: int = 1
    backoff_seconds: float = 5.0


@dataclass(frozen=True)
class RetentionSpec:
    """How long logs and CSV outputs of this project are kept (ETL_*_RETENTION_* variables override)."""

    log_days: int | None = None
    log_runs: int | None = None
    output_days: int | None = None
    output_runs: int | None = None


@dataclass(frozen=True)
class DependencySpec:
    """An upstream project whose latest run must have succeeded (within ``max_age``) before this one runs."""

    project: str
    max_age: timedelta | None = None


@dataclass(frozen=True)
class AggregationSpec:
    """A SQL file run on the warehouse after the loads, in one transaction."""

    name: str
    file: str


@dataclass(frozen=True)
class FunctionSpec:
    """A function of the project's ``script_worker.py`` with its keyword parameters."""

    function: str
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def task_name(self) -> str:
        return self.name or self.function


@dataclass(frozen=True)
class ReconcileSpec:
    """Source against target before the load commits: the window's aggregates computed on the source,
    compared with the same aggregates of the rows the load wrote, inside its transaction."""

    count: bool = True
    sums: tuple[str, ...] = ()
    min_max: tuple[str, ...] = ()
    tolerance: float = 0.0
    severity: Severity = Severity.ERROR


@dataclass(frozen=True)
class EmailSpec:
    """Who gets an e-mail after a run, and when (needs the ETL_SMTP_* variables)."""

    to: tuple[str, ...]
    on: frozenset[str] = frozenset({"failure"})
    repeat_after: timedelta = timedelta(hours=6)
    attach_report: bool = False


@dataclass(frozen=True)
class ConnectionSpec:
    """A connection a project uses: its name and, for embedded SQLite only, a default URL."""

    name: str
    default_url: str | None = None


@dataclass(frozen=True)
class TablePattern:
    """A pattern entry of ``tables:``: the source tables it matches become tables when the project is
    assembled (script_factory/expand.py); their targets are ``target_schema.<target_prefix><name>``."""

    schema: str | None
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    target_schema: str | None = None
    target_prefix: str = ""

    def __str__(self) -> str:
        where = f"schema {self.schema}" if self.schema else "the default schema"
        shown = f"{where}, include {', '.join(self.include)}"
        return shown + (f", exclude {', '.join(self.exclude)}" if self.exclude else "")


@dataclass(frozen=True)
class SourceSpec:
    """Where a table's rows come from: a connection plus a query file, a table, or connector options
    (or, before the project is assembled, a pattern of tables)."""

    connection: str
    query_file: str | None = None
    table: TableName | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    pattern: TablePattern | None = None


@dataclass(frozen=True)
class TableSpec:
    target: TableName
    source: SourceSpec
    strategy: Strategy
    keys: tuple[str, ...] = ()
    cursor: str | None = None
    chunk_size: int | None = None
    target_connection: str | None = None  # None: the project's warehouse
    precheck: bool = False
    reconcile: ReconcileSpec | None = None
    profile: bool = False  # profile the rows each load writes (script_factory/profiling.py)
    create: bool = True  # create the target from the source's columns when it is missing
    on_schema_change: OnSchemaChange = OnSchemaChange.ADD_COLUMNS
    continue_on_error: bool = False  # a failing load is recorded and the other tables still load
    transforms: TransformSpec | None = None  # None: the table has none (COPY pass-through stays possible)


@dataclass(frozen=True)
class CheckSpec:
    """A check. ``severity`` is the one written, or the highest its conditions can give; ``error_if`` and
    ``warn_if`` are the conditions written (None: the severity's ``>0``, see :meth:`conditions`)."""

    name: str
    kind: str
    table: TableName | None
    severity: Severity
    options: Mapping[str, Any] = field(default_factory=dict)  # the kind's keys, see config_models.CHECK_KINDS
    error_if: Threshold | None = None
    warn_if: Threshold | None = None

    @property
    def has_conditions(self) -> bool:
        """Whether project.yml gives error_if or warn_if (else the severity decides)."""
        return self.error_if is not None or self.warn_if is not None

    def conditions(self) -> tuple[Threshold | None, Threshold | None]:
        """``(error_if, warn_if)`` in force: those written, or ``>0`` at the check's severity."""
        if self.has_conditions:
            return self.error_if, self.warn_if
        return (ANY_FAILING, None) if self.severity is Severity.ERROR else (None, ANY_FAILING)


@dataclass(frozen=True)
class OutputSpec:
    name: str
    query_file: str
    connection: str = WAREHOUSE_CONNECTION
    delete_after_run: bool = False
    upload: str | None = None  # a destination connection (e.g. S3) the CSV is also uploaded to


@dataclass(frozen=True)
class ProjectConfig:
    """A validated project.yml. File paths are still relative; the factory resolves them."""

    name: str
    folder: Path
    description: str = ""
    warehouse: str = WAREHOUSE_CONNECTION
    connections: Mapping[str, ConnectionSpec] = field(default_factory=dict)
    initial_start: datetime = datetime(1900, 1, 1)
    lookback: timedelta = timedelta(0)
    timezone: str = "UTC"
    retries: RetrySpec = field(default_factory=RetrySpec)
    ddl: tuple[str, ...] = ()
    before_load: tuple[FunctionSpec, ...] = ()
    tables: tuple[TableSpec, ...] = ()
    after_load: tuple[FunctionSpec, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    aggregations: tuple[AggregationSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    email: EmailSpec | None = None
    retention: RetentionSpec = field(default_factory=RetentionSpec)
    schedule: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    publish: str = "table"  # table | run
    skip_when_no_data: bool = False
    continue_on_error: bool = False
    parallel: int = 1  # tables loading at once (script_factory/parallel.py)
    depends_on: tuple[DependencySpec, ...] = ()  # upstream projects checked before a run (script_factory/upstream.py)


#: the specs that have the same shape in project.yml: config_models.py validates each with a pydantic
#: dataclass of the same name and fields, which config.py turns into this one
SAME_SHAPE: tuple[type, ...] = (
    RetrySpec,
    RetentionSpec,
    DependencySpec,
    AggregationSpec,
    FunctionSpec,
    ReconcileSpec,
    EmailSpec,
)
