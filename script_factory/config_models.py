"""The project.yml document as pydantic models: its keys, their rules and help texts, and its JSON Schema.

The models describe the file as it is written; script_factory/config.py turns a validated document
into the plain frozen specs the engine uses (config_specs.py, no pydantic). Where the file and the
engine have the same shape (retries, retention, aggregations, functions, e-mail...), the model here is
a pydantic dataclass with the spec's name and fields, copied into the spec after validation. The
scalar types (config_types.py) say what they expected in the operator's words; config_messages.py
turns the rest of pydantic's errors into such lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from connectors.base import TableName
from connectors.schema import OnSchemaChange
from data_quality_checks.thresholds import Threshold
from script_factory.config_specs import DEFAULT_CHUNK_SIZE, Severity, Strategy
from script_factory.config_types import (
    Bound,
    Condition,
    ConnectionName,
    Cron,
    Description,
    Duration,
    EmailAddress,
    Flag,
    Identifier,
    Moment,
    Name,
    PositiveInt,
    ProjectName,
    RelativeFile,
    Seconds,
    SqliteUrl,
    Table,
    Text,
    TimeZone,
    When,
    expected,
    problem,
)
from script_factory.settings import WAREHOUSE_CONNECTION


def _without_nulls(data: Any, fields: Mapping[str, Any]) -> Any:
    """A key written with no value (``keys:``) means the key is absent: its default, or missing."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None or k not in fields}
    return data


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        return _without_nulls(data, cls.model_fields)


_SPEC = ConfigDict(extra="forbid", defer_build=True)


@dataclass(frozen=True, config=_SPEC)
class _Spec:
    """A spec the engine uses that has the same shape in project.yml (a frozen dataclass, validated)."""

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        return _without_nulls(data, cls.__dataclass_fields__)


@dataclass(frozen=True, config=_SPEC)
class RetrySpec(_Spec):
    """How often a task that hit a transient error (dropped connection, deadlock...) is tried."""

    attempts: PositiveInt = Field(default=1, description="Tries in all, the first included (1: no retry).")
    backoff_seconds: Seconds = Field(default=5.0, description="Pause before the 2nd try; doubled before each next one.")


@dataclass(frozen=True, config=_SPEC)
class RetentionSpec(_Spec):
    """How long logs and CSV outputs of this project are kept (ETL_*_RETENTION_* variables override)."""

    log_days: PositiveInt | None = Field(default=None, description="Delete logs older than this many days.")
    log_runs: PositiveInt | None = Field(default=None, description="Keep the logs of this many most recent runs.")
    output_days: PositiveInt | None = Field(default=None, description="Delete outputs older than this many days.")
    output_runs: PositiveInt | None = Field(default=None, description="Keep the outputs of this many most recent runs.")


@dataclass(frozen=True, config=_SPEC)
class DependencySpec(_Spec):
    """An upstream project whose latest run must have succeeded (within ``max_age``) before this one runs."""

    project: Name = Field(description="The upstream project's folder name under customer_code/.")
    max_age: Duration | None = Field(
        default=None,
        description="How long ago its latest successful run may have ended, e.g. 6h or 1d (none: any age).",
    )


@dataclass(frozen=True, config=_SPEC)
class AggregationSpec(_Spec):
    """A SQL file run on the warehouse after the loads, in one transaction."""

    name: Name = Field(description="The task name (aggregate:<name>).")
    file: RelativeFile = Field(description="The .sql file, below aggregations/ (e.g. sales_demo/daily_sales.sql).")


@dataclass(frozen=True, config=_SPEC)
class FunctionSpec(_Spec):
    """A function of the project's ``script_worker.py`` with its keyword parameters."""

    function: Identifier = Field(description="The function's name in script_worker.py; called as fn(ctx, **params).")
    params: Mapping[str, Any] = Field(default_factory=dict, description="Keyword parameters of the function.")
    name: Name | None = Field(default=None, description="The task name (default: the function's name).")

    @property
    def task_name(self) -> str:
        return self.name or self.function


@dataclass(frozen=True, config=_SPEC)
class ReconcileSpec(_Spec):
    """Source against target before the load commits: the window's aggregates computed on the source,
    compared with the same aggregates of the rows the load wrote, inside its transaction."""

    count: bool = Field(default=True, description="Compare the number of rows.")
    sums: tuple[Identifier, ...] = Field(default=(), description="Numeric columns whose sums are compared.")
    min_max: tuple[Identifier, ...] = Field(default=(), description="Columns whose minimum and maximum are compared.")
    tolerance: Seconds = Field(
        default=0.0, description="The largest difference accepted, as an absolute number (0: exact)."
    )
    severity: Severity = Field(
        default=Severity.ERROR, description="error: a mismatch rolls the load back; warn: logged."
    )


@dataclass(frozen=True, config=_SPEC)
class EmailSpec(_Spec):
    """Who gets an e-mail after a run, and when (needs the ETL_SMTP_* variables)."""

    to: tuple[EmailAddress, ...] = Field(min_length=1, description="The recipients' addresses.")
    on: frozenset[When] = Field(
        default=frozenset({"failure"}),
        min_length=1,
        description="failure, warning (success with failing warn checks), success, recovered (the first success "
        "after a failure).",
    )
    repeat_after: Duration = Field(
        default=timedelta(hours=6),
        description="The same failure run after run is mailed once per this duration (e.g. 6h), not once per run.",
    )
    attach_report: Flag = Field(default=False, description="Attach the project's HTML report (the last 30 days).")

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict) and True in data:  # YAML 1.1 reads a bare `on:` key as the boolean true
            data = {("on" if k is True else k): v for k, v in data.items()}
        return _without_nulls(data, cls.__dataclass_fields__)


class ConnectionDoc(_Document):
    """A connection the project uses. Its URL, credentials included, comes from ETL_CONN_<NAME>."""

    default: SqliteUrl | None = Field(
        None, description="A sqlite:/// URL used when ETL_CONN_<NAME> is not set (no other scheme: credentials)."
    )


class IncrementalDoc(_Document):
    """Where incremental (load type I) windows start, and the zone of naive source timestamps."""

    initial_start: Moment = Field(
        default=datetime(1900, 1, 1),
        description="Start of the first incremental window, when a table has no watermark yet.",
        json_schema_extra={"default": "1900-01-01"},
    )
    lookback: Duration = Field(
        default=timedelta(0),
        description="Re-read this much before the watermark for late rows: seconds, or 30m, 2h, 1d, 1w.",
        json_schema_extra={"default": 0},
    )
    timezone: TimeZone = Field(default="UTC", description="UTC or an IANA name such as Europe/Paris.")


class SourceDoc(BaseModel):
    """Where a table's rows come from. Other keys are the connector's own options (S3, Salesforce...)."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    connection: ConnectionName = Field(description="A connection declared under connections: (or the warehouse).")
    query: RelativeFile | None = Field(None, description="A .sql file of the project, e.g. sql/customers.sql.")
    table: Table | None = Field(None, description="A source table, instead of a query.")

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        return _without_nulls(data, cls.model_fields)

    @model_validator(mode="after")
    def _query_or_table(self) -> SourceDoc:
        if self.query and self.table:
            raise expected("either query or table, not both")
        return self


def _type_name(value: Any) -> str:
    from connectors.columns import parse_type
    from utilities.errors import ConfigError

    if not isinstance(value, str) or not value.strip():
        raise expected("a type name such as integer, text or numeric(12,2)", value)
    try:
        parse_type(value)
    except ConfigError as exc:
        raise problem(str(exc).removeprefix("type: ")) from None
    return value.strip()


TypeName = Annotated[str, PlainValidator(_type_name), WithJsonSchema({"type": "string", "examples": ["numeric(12,2)"]})]


class ColumnDoc(_Document):
    """What happens to one source column in flight: trim, null_if, default, cast, then one of hash / mask / encrypt."""

    rename: Identifier | None = Field(None, description="The column's name in the target (keys: and cursor: use it).")
    cast: TypeName | None = Field(None, description="Convert values to this type: integer, text, numeric(12,2)...")
    trim: bool = Field(False, description="Strip leading and trailing whitespace of text values.")
    null_if: tuple[Any, ...] = Field((), description="Values that become NULL, e.g. ['', 'N/A'] (after trim).")
    default: Any = Field(None, description="The value that replaces NULL (after null_if).")
    hash: bool = Field(
        False, description="HMAC-SHA256 of the value's text (hex) with ETL_PII_KEY; stable, so joins work."
    )
    mask: PositiveInt | None = Field(None, description="Keep the last N characters, replace the others with '*'.")
    encrypt: bool = Field(
        False, description="AES-GCM with ETL_PII_KEY, as base64 text (python -m script_factory.transforms decrypt)."
    )

    @model_validator(mode="after")
    def _one_protection(self) -> ColumnDoc:
        if sum((self.hash, self.mask is not None, self.encrypt)) > 1:
            raise problem("hash, mask and encrypt exclude each other: keep one")
        return self


class LookupSourceDoc(_Document):
    """The reference rows of a lookup: a CSV file of the project, or a table of a connection."""

    file: RelativeFile | None = Field(
        None, description="A CSV file of the project with a header row, e.g. lookups/countries.csv."
    )
    connection: ConnectionName | None = Field(None, description="A declared connection holding the reference table.")
    table: Table | None = Field(None, description="The reference table (with connection).")

    @model_validator(mode="after")
    def _file_or_table(self) -> LookupSourceDoc:
        if bool(self.file) == bool(self.connection and self.table) or (bool(self.connection) != bool(self.table)):
            raise expected("either file, or connection and table")
        return self


class LookupDoc(_Document):
    """Add a column from a small reference table, loaded once per run (e.g. country code -> country name)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    column: Identifier = Field(description="The table's column matched with key (its target name).")
    source: LookupSourceDoc = Field(alias="from", description="Where the reference rows are.")
    key: Identifier = Field(description="The reference column matched with column.")
    value: Identifier = Field(description="The reference column whose value is added.")
    name: Identifier | None = Field(None, alias="as", description="The added column's name (default: value).")
    type: TypeName | None = Field(None, description="The added column's type (default text).")


class DedupeDoc(_Document):
    """Keep one row per key: the one with the latest cursor (in the target's staging table)."""

    keys: tuple[Identifier, ...] = Field((), description="The columns that identify a row (default: the table's keys).")
    keep: Literal["latest_by_cursor"] = Field("latest_by_cursor", description="Which row is kept: latest_by_cursor.")


class TableAirflowDoc(_Document):
    """How the generated Airflow DAG (dags/etl_projects.py) runs this table; the runner ignores it."""

    group: Name | None = Field(
        None, description="Tables with the same group run in one Airflow task (default: one task per table)."
    )


class TableDoc(_Document):
    """A table to load: its source, its target and how rows are applied."""

    target: Table = Field(description="The target table: dim_customer or schema.dim_customer.")
    source: SourceDoc
    strategy: Strategy = Field(description="append | merge (on keys) | replace | delete_insert (by window).")
    keys: tuple[Identifier, ...] = Field((), validate_default=True, description="Key columns; required for merge.")
    cursor: Identifier | None = Field(
        None, validate_default=True, description="The incremental column; required for append and delete_insert."
    )
    chunk_size: PositiveInt | None = Field(None, description="Rows per chunk for this table (default: the project's).")
    target_connection: ConnectionName | None = Field(
        None, description="Load into this connection (Snowflake, BigQuery...) instead of the warehouse."
    )
    precheck: bool | None = Field(
        None, description="Count the source's window first; with no row, skip the load (default: the project's)."
    )
    reconcile: ReconcileSpec | None = Field(
        None, description="Compare the source's aggregates of the window with what the load wrote, before it commits."
    )
    profile: bool | None = Field(
        None,
        description="Profile the rows each load writes (null %, distinct count, min, max, text length) into "
        "etl_profiles, in the load's transaction (default: the project's profile).",
    )
    create: bool | None = Field(
        None,
        description="Create the target table from the source's columns when it does not exist (default: the "
        "project's create).",
    )
    on_schema_change: OnSchemaChange | None = Field(
        None,
        description="add_columns | fail | ignore: what a load does when the source's columns differ from the "
        "target's (default: the project's).",
    )
    continue_on_error: bool | None = Field(
        None, description="true: a failing load of this table is recorded and the other tables still load."
    )
    # -- transforms in flight (README "Transforms"; script_factory/transforms.py) --
    select: tuple[Identifier, ...] = Field((), description="Keep only these source columns, in this order.")
    drop: tuple[Identifier, ...] = Field((), description="Leave out these source columns.")
    columns: dict[Identifier, ColumnDoc] = Field(
        default_factory=dict,
        description="Per source column: rename, cast, trim, null_if, default, hash, mask, encrypt.",
    )
    dedupe: DedupeDoc | None = Field(None, description="Keep one row per key, the latest by cursor.")
    lookups: tuple[LookupDoc, ...] = Field((), description="Columns added from small reference tables or CSV files.")
    transform: Identifier | None = Field(
        None, description="A function of script_worker.py: Batch -> Batch, run on each chunk last."
    )
    airflow: TableAirflowDoc | None = Field(None, description="For dags/: the Airflow task this table runs in.")

    @field_validator("keys")
    @classmethod
    def _merge_needs_keys(cls, keys: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if info.data.get("strategy") is Strategy.MERGE and not keys:
            raise expected("the key columns a merge matches on, e.g. keys: [customer_id]")
        return keys

    @field_validator("cursor")
    @classmethod
    def _window_needs_cursor(cls, cursor: str | None, info: ValidationInfo) -> str | None:
        strategy = info.data.get("strategy")
        if cursor is None and strategy is Strategy.APPEND:
            raise expected(
                "the cursor column an append loads after (without one, every run "
                "would append every row again; use replace or merge)"
            )
        if cursor is None and strategy is Strategy.DELETE_INSERT:
            raise expected("the cursor column whose window delete_insert replaces")
        return cursor

    @model_validator(mode="after")
    def _transforms_fit(self) -> TableDoc:
        _check_transforms(self)
        return self


def _check_transforms(doc: TableDoc) -> None:
    """The transforms of a table agree with each other and with its keys and cursor (target names)."""
    if doc.select and doc.drop:
        raise problem("select and drop exclude each other: keep one")
    for name in doc.columns:
        if doc.select and name.lower() not in {c.lower() for c in doc.select}:
            raise problem(f"columns.{name}: not in select; add it to select or remove its rules")
        if name.lower() in {c.lower() for c in doc.drop}:
            raise problem(f"columns.{name}: the column is dropped (drop:); remove one of the two")
    targets = [(rule.rename or name).lower() for name, rule in doc.columns.items()]
    targets += [(lookup.name or lookup.value).lower() for lookup in doc.lookups]
    for name in dict.fromkeys(t for t in targets if targets.count(t) > 1):
        raise problem(f"two columns would be named {name!r} in the target (rename: / lookups as:); rename one")
    protected = {(rule.rename or name).lower(): rule for name, rule in doc.columns.items()}
    dedupe_keys = (doc.dedupe.keys or doc.keys) if doc.dedupe else ()
    for column in dict.fromkeys((*doc.keys, *dedupe_keys)):
        rule = protected.get(column.lower())
        if rule is not None and (rule.encrypt or rule.mask is not None):
            raise problem(f"key column {column!r} is encrypted or masked, so equal keys would differ: hash it instead")
    rule = protected.get(doc.cursor.lower()) if doc.cursor else None
    if rule is not None and (rule.hash or rule.encrypt or rule.mask is not None):
        raise problem(f"cursor {doc.cursor!r} is hashed, masked or encrypted: windows need its real values")
    if doc.dedupe and not doc.cursor:
        raise problem("dedupe keeps the row with the latest cursor: add cursor: to the table")
    if doc.dedupe and not dedupe_keys:
        raise problem("dedupe needs keys: give dedupe.keys or the table's keys")


class TablePatternDoc(_Document):
    """Which tables of a source schema a pattern entry loads (shell-style patterns, case-insensitive)."""

    schema_: Identifier | None = Field(
        None, alias="schema", description="The source schema (on MySQL/MariaDB a database); default: the connection's."
    )
    include: tuple[Text, ...] = Field(("*",), min_length=1, description="Table names to load, e.g. ['ord*'].")
    exclude: tuple[Text, ...] = Field((), description="Table names to leave out, e.g. ['*_tmp'].")


class PatternSourceDoc(_Document):
    """A SQL source whose tables a pattern entry lists from the catalog when the project is assembled."""

    connection: ConnectionName = Field(description="A connection declared under connections: (a SQL source).")
    tables: TablePatternDoc


class TablePatternEntryDoc(TableDoc):
    """A pattern entry: one ordinary table per source table it matches, expanded from the source's catalog
    when the project is assembled; each target takes the source table's name."""

    target: SkipJsonSchema[None] = None  # type: ignore[assignment]
    source: PatternSourceDoc  # type: ignore[assignment]
    target_schema: Identifier | None = Field(None, description="The schema of the targets (default: the warehouse's).")
    target_prefix: Identifier | None = Field(None, description="Put before each source table's name, e.g. erp_.")

    @field_validator("target", mode="before")
    @classmethod
    def _no_target(cls, target: Any) -> None:
        raise problem(
            "a pattern entry (source.tables) names each target after its source table: drop target "
            "(target_schema and target_prefix shape the names)"
        )

    @field_validator("keys")
    @classmethod
    def _merge_needs_keys(cls, keys: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return keys  # without keys, a merge takes each table's primary key from the source


def _entry_kind(value: Any) -> str:
    source = value.get("source") if isinstance(value, dict) else None
    return "pattern" if isinstance(source, dict) and "tables" in source else "table"


TableEntry = Annotated[
    Annotated[TableDoc, Tag("table")] | Annotated[TablePatternEntryDoc, Tag("pattern")], Discriminator(_entry_kind)
]
TABLE_ENTRY_TAGS = {"table": TableDoc, "pattern": TablePatternEntryDoc}  # in pydantic's error locations


class SourceDefaultsDoc(BaseModel):
    """The source keys every table shares (its connection, a connector's options); merged one level deep."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    connection: ConnectionName | None = Field(None, description="The connection of every table's source.")

    @model_validator(mode="before")
    @classmethod
    def _not_what_to_read(cls, data: Any) -> Any:
        for key in ("query", "table", "tables"):
            if isinstance(data, dict) and key in data:
                raise problem(f"{key} says what one table reads: set it on each table, not under defaults")
        return _without_nulls(data, cls.model_fields)


def _defaults_model() -> type[_Document]:
    """Every key of a table but target (and source, merged one level deep), all optional: built from
    TableDoc, so a key added there can be defaulted with the same rules and messages."""
    fields: dict[str, Any] = {
        name: (info.rebuild_annotation() | None, Field(None, description=info.description))
        for name, info in TableDoc.model_fields.items()
        if name not in ("target", "source")
    }
    fields["source"] = (SourceDefaultsDoc | None, None)
    model: type[_Document] = create_model("DefaultsDoc", __base__=_Document, **fields)
    model.__doc__ = "Keys every table of tables: takes unless it sets its own (a table's null drops one)."
    return model


DefaultsDoc = _defaults_model()


def with_defaults(raw: Any) -> Any:
    """The document with ``defaults:`` merged under each entry of ``tables:`` (``source:`` one level deep)."""
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("defaults"), dict)
        or not isinstance(raw.get("tables"), list)
    ):
        return raw
    defaults = raw["defaults"]

    def merged(table: Any) -> Any:
        if not isinstance(table, dict):
            return table
        both = {**defaults, **table}
        if isinstance(defaults.get("source"), dict) and isinstance(table.get("source"), dict):
            shared = {k: v for k, v in defaults["source"].items() if k not in ("query", "table", "tables")}
            both["source"] = {**shared, **table["source"]}  # what a table reads is its own (refused in defaults)
        return both

    return {**raw, "tables": [merged(table) for table in raw["tables"]]}


_CONDITION = (
    'Quote it: ">0", ">=10", "=0", "!=0", "<5", or a percentage of the rows checked: ">1%", ">=0.5%". '
    "error_if is tried first, then warn_if; when neither holds the check passes. Not with severity."
)


class _Check(_Document):
    kind: str
    name: Name | None = Field(None, description="The check's name in etl_dq_results (default: <kind>_<table>).")
    table: Table | None = None
    severity: Severity = Field(
        Severity.ERROR,
        description='error fails the run (exit code 4), as error_if: ">0"; warn only reports, as warn_if: ">0".',
    )
    error_if: Condition | None = Field(
        None, description="Fail with severity error (exit code 4) when the failing rows meet this. " + _CONDITION
    )
    warn_if: Condition | None = Field(
        None, description="Fail with severity warn (reported only) when the failing rows meet this. " + _CONDITION
    )

    counts_rows: ClassVar[bool] = True  # its failing rows are rows of a table, so a percentage means something

    @property
    def check_name(self) -> str:
        return self.name or (f"{self.kind}_{self.table.name}" if self.table else self.kind)

    @field_validator("error_if", "warn_if")
    @classmethod
    def _percent_of_rows(cls, condition: Threshold | None, info: ValidationInfo) -> Threshold | None:
        if condition is None or not condition.percent:
            return condition
        if not cls.counts_rows:
            raise problem(
                f"a percentage needs rows to count, and a {info.data.get('kind')} check has one verdict, "
                f'not rows: use a count such as ">0"'
            )
        if info.data.get("table") is None and "table" in info.data:
            raise problem("a percentage is of the rows of the check's table: add table: (the table the query checks)")
        return condition

    @model_validator(mode="after")
    def _severity_or_conditions(self) -> _Check:
        if "severity" in self.model_fields_set and (self.error_if or self.warn_if):
            raise problem(
                "severity cannot be combined with error_if or warn_if (the condition that holds sets the "
                "severity): drop severity"
            )
        return self


class _TableCheck(_Check):
    table: Table = Field(description="The warehouse table checked.")


Columns = Annotated[tuple[Identifier, ...], Field(min_length=1, description="The columns checked.")]


class NotNullCheck(_TableCheck):
    """No NULL in any of the columns."""

    kind: Literal["not_null"]
    columns: Columns


class UniqueCheck(_TableCheck):
    """No two rows with the same values in the columns."""

    kind: Literal["unique"]
    columns: Columns


class AcceptedValuesCheck(_TableCheck):
    """Every value of the column is one of the values."""

    kind: Literal["accepted_values"]
    column: Identifier
    values: tuple[Any, ...] = Field(min_length=1, description="The accepted values.")


class RowCountCheck(_TableCheck):
    """The table's row count is within min and max (either may be left out)."""

    kind: Literal["row_count"]
    counts_rows: ClassVar[bool] = False
    min: Bound | None = None
    max: Bound | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> RowCountCheck:
        if self.min is None and self.max is None:
            raise expected("min, max or both")
        return self


class FreshnessCheck(_TableCheck):
    """The newest value of the column is at most max_age old."""

    kind: Literal["freshness"]
    column: Identifier
    max_age: Duration = Field(description="e.g. 2h or 1d.")
    counts_rows: ClassVar[bool] = False


class RelationshipsCheck(_TableCheck):
    """Every non-NULL value of column is found in field of the table to (a foreign key; NULLs pass)."""

    kind: Literal["relationships"]
    column: Identifier = Field(description="The column of table whose values must exist in to.field.")
    to: Table = Field(description="The referenced table, e.g. dim_customer (listed before table under tables:).")
    field: Identifier = Field(description="The column of to that holds the values, e.g. customer_id.")

    @field_validator("to")
    @classmethod
    def _loaded_first(cls, to: TableName, info: ValidationInfo) -> TableName:
        table = info.data.get("table")
        order = (info.context or {}).get("loaded")  # the warehouse tables, in the order they load
        if table is None or order is None or to == table or str(to) not in order or str(table) not in order:
            return to
        if order.index(str(to)) > order.index(str(table)):
            raise problem(
                f"{to} loads after {table}, but this check runs when {table} loads (before its commit) "
                f"and would not see this run's rows of {to}: list {to} before {table} under tables:"
            )
        return to


class CustomSqlCheck(_Check):
    """A query of the project that returns the failing rows."""

    kind: Literal["custom_sql"]
    file: RelativeFile = Field(description="A .sql file of the project, e.g. sql/check_orphans.sql.")


_CHECK_MODELS = (
    NotNullCheck,
    UniqueCheck,
    AcceptedValuesCheck,
    RowCountCheck,
    FreshnessCheck,
    RelationshipsCheck,
    CustomSqlCheck,
)
CheckDoc = Annotated[
    NotNullCheck
    | UniqueCheck
    | AcceptedValuesCheck
    | RowCountCheck
    | FreshnessCheck
    | RelationshipsCheck
    | CustomSqlCheck,
    Field(discriminator="kind"),
]
CHECK_KINDS: dict[str, set[str]] = {
    get_args(m.model_fields["kind"].annotation)[0]: set(m.model_fields) - set(_Check.model_fields)
    for m in _CHECK_MODELS
}


class OutputDoc(_Document):
    """A CSV written to metadata/output/<project>/<name>_<YYYYmmdd_HHMMSS>.csv after the run."""

    name: Name
    query: RelativeFile = Field(description="A .sql file of the project, e.g. sql/output_daily_sales.sql.")
    connection: ConnectionName | None = Field(None, description="The connection queried (default: the warehouse).")
    delete_after_run: Flag = Field(False, description="true: reported (and e-mailed), then deleted.")
    upload: ConnectionName | None = Field(None, description="Also upload the file to this connection (e.g. S3).")


class NotifyDoc(_Document):
    email: EmailSpec | None = None


def _label(item: Any) -> str:
    """The name under which an item of a section must be unique."""
    if isinstance(item, TablePatternEntryDoc):
        return f"pattern {item.source.model_dump(by_alias=True)}"
    if isinstance(item, TableDoc):
        return str(item.target)
    if isinstance(item, FunctionSpec):
        return item.task_name
    if isinstance(item, _Check):
        return item.check_name
    return str(item.name)


class AirflowDoc(_Document):
    """How dags/etl_projects.py turns this project into an Airflow DAG; the runner ignores it."""

    owner: Description | None = Field(None, description="The DAG's owner (default: airflow).")
    tags: tuple[Name, ...] = Field((), description="Tags of the DAG, beside etl and the project's name.")
    catchup: bool = Field(False, description="Run the schedule's missed intervals (Airflow's catchup).")
    windows: Literal["watermark", "interval"] = Field(
        "watermark",
        description="watermark: each run is a normal incremental run; interval: each task loads Airflow's data "
        "interval (--start-date/--end-date), so reruns and Airflow's backfill are idempotent.",
    )


MAX_PARALLEL = 32  # tables loading at once; each holds two or three connections


class ProjectFile(_Document):
    """customer_code/<project>/project.yml: one ETL project (see README.md, "Writing a project")."""

    project: ProjectName = Field(description="The project's name; must equal its folder under customer_code/.")
    description: Description = Field("", description="One line shown by script_runner.py --list.")
    warehouse: Name = Field(WAREHOUSE_CONNECTION, description="The connection that holds the audit tables.")
    connections: dict[Name, ConnectionDoc | None] = Field(
        default_factory=dict,
        description="Connection names; URLs and credentials come from ETL_CONN_<NAME>, never from this file.",
        json_schema_extra={"additionalProperties": False},  # a name that does not match NAME is an error
    )
    incremental: IncrementalDoc = Field(default_factory=IncrementalDoc)
    retries: RetrySpec = Field(default_factory=RetrySpec)
    chunk_size: PositiveInt = Field(DEFAULT_CHUNK_SIZE, description="Rows per chunk when streaming.")
    ddl: tuple[RelativeFile, ...] = Field((), description="Files under warehouse/, applied once each, in order.")
    before_load: tuple[FunctionSpec, ...] = Field((), description="Functions of script_worker.py run before loads.")
    defaults: DefaultsDoc | None = Field(  # type: ignore[valid-type]
        None, description="Keys every table takes unless it sets its own (source: merged one level deep)."
    )
    tables: tuple[TableEntry, ...] = Field(
        (), description="The tables to load: one entry each, or a pattern entry (source.tables) for many."
    )
    after_load: tuple[FunctionSpec, ...] = Field((), description="Functions of script_worker.py run after loads.")
    checks: tuple[CheckDoc, ...] = Field((), description="Data quality checks, run on the warehouse.")
    aggregations: tuple[AggregationSpec, ...] = ()
    outputs: tuple[OutputDoc, ...] = ()
    notify: NotifyDoc = Field(default_factory=NotifyDoc)
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    schedule: Cron | None = Field(
        None, description='A cron expression such as "0 6 * * *" (--schedule-print, --schedule-install, dags/).'
    )
    depends_on: tuple[DependencySpec, ...] = Field(
        (),
        description="Upstream projects: a run stops with exit code 5 (a skipped audit row) unless each one's latest "
        "run succeeded within its max_age.",
    )
    airflow: AirflowDoc | None = Field(None, description="For dags/: how the project becomes an Airflow DAG.")
    publish: Literal["table", "run"] = Field(
        "table",
        description="table: each table commits with its checks and state; run: every warehouse load, its checks "
        "and the aggregations commit together at the end (all or nothing).",
    )
    precheck: bool = Field(False, description="Count each source window first and skip the tables with no row.")
    profile: bool = Field(
        False, description="Profile the rows each load writes into etl_profiles (see a table's profile)."
    )
    create: bool = Field(
        True,
        description="Create a missing target table from the source's columns, types and keys (false: a missing "
        "table is an error).",
    )
    on_schema_change: OnSchemaChange = Field(
        OnSchemaChange.ADD_COLUMNS,
        description="add_columns: add new source columns and widen types in place; fail: any difference is an error; "
        "ignore: load the columns both sides have.",
    )
    skip_when_no_data: bool = Field(
        False, description="When no table had new rows, skip the aggregations and outputs too."
    )
    continue_on_error: bool = Field(
        False, description="A failing table load is recorded and the other tables still load (not with publish: run)."
    )
    parallel: int = Field(
        1,
        ge=1,
        le=MAX_PARALLEL,
        description="How many tables load at once, each in its own connection and transaction (not with "
        "publish: run). A table whose relationships check refers to another table of the run waits for it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _tables_with_defaults(cls, data: Any) -> Any:
        return with_defaults(data)

    @field_validator("tables", "before_load", "after_load", "checks", "aggregations", "outputs")
    @classmethod
    def _distinct_names(cls, items: tuple[Any, ...]) -> tuple[Any, ...]:
        names = [_label(item) for item in items]
        for name in dict.fromkeys(n for n in names if names.count(n) > 1):
            raise problem(f"{name!r} appears twice; give each a distinct name")
        return items

    @field_validator("depends_on")
    @classmethod
    def _distinct_upstreams(cls, items: tuple[DependencySpec, ...], info: ValidationInfo) -> tuple[DependencySpec, ...]:
        names = [item.project for item in items]
        for name in dict.fromkeys(n for n in names if names.count(n) > 1):
            raise problem(f"project {name!r} appears twice; list each upstream project once")
        if info.data.get("project") in names:
            raise problem(f"a project cannot depend on itself ({info.data['project']!r})")
        return items


def json_schema() -> dict[str, Any]:
    """The JSON Schema of project.yml, for editors (customer_code/project.schema.json)."""
    schema = ProjectFile.model_json_schema()
    for definition in [schema, *schema.get("$defs", {}).values()]:
        _nulls_allowed(definition)
        definition["title"] = re.sub(r"(Doc|Spec)$", "", definition.get("title", ""))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "project.yml"}


def _nulls_allowed(definition: dict[str, Any]) -> None:
    """An optional key may be written with no value (see ``_without_nulls``): say so in the schema."""
    required = set(definition.get("required", ()))
    for key, prop in definition.get("properties", {}).items():
        if key in required or {"type": "null"} in prop.get("anyOf", ()):
            continue
        notes = {k: prop.pop(k) for k in ("title", "description", "default", "examples") if k in prop}
        definition["properties"][key] = {"anyOf": [prop, {"type": "null"}], **notes}
