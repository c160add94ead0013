"""A load's target shape: describe the source, compare it with the target, and say what DDL runs first.

The decision is ``connectors/schema.py``'s (:func:`~connectors.schema.plan_changes`); this module
gathers its inputs for one table (the source's columns without reading a row, the target's columns,
whether a load created the table), renders the DDL in the target's dialect and, after the load,
records what ran in the ``etl_schema_changes`` ledger on the connection of the load's transaction.
``--dry-run`` and ``--check`` show the same plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from connectors.base import ArrowStream, ReadRequest, RowStream
from connectors.schema import OnSchemaChange, SchemaPlan, SchemaPolicy, SchemaStep, plan_changes
from utilities.errors import ConfigError, FatalError

if TYPE_CHECKING:
    from connectors.base import Connector
    from connectors.columns import SourceColumn
    from script_factory.config import TableSpec
    from script_factory.context import RunContext


@dataclass(frozen=True)
class TargetShape:
    """What a load does to its target's shape before writing rows. ``plan`` is None when the target is
    not one whose shape this product manages (Snowflake, BigQuery) or the source cannot describe itself
    and the table exists (it is loaded as it is, as before)."""

    plan: SchemaPlan | None = None
    steps: tuple[SchemaStep, ...] = ()  # the statements that apply the plan, in order
    loaded: tuple[str, ...] | None = None  # on_schema_change ignore: only these source columns are loaded
    note: str = ""  # why the plan is None, for --check and the log

    @property
    def ddl(self) -> tuple[str, ...]:
        return tuple(step.ddl for step in self.steps)

    def describe(self) -> str:
        """For ``--dry-run``: the DDL, or that the table matches."""
        if self.plan is None:
            return f"target: not compared with the source ({self.note})" if self.note else ""
        lines = [f"target {self.plan.table}: {self.plan.summary()}"]
        lines += [f"  {statement};" for statement in self.ddl]
        return "\n".join(lines)


def shape_target(
    ctx: RunContext,
    table: TableSpec,
    request: ReadRequest,
    source: Connector,
    target: Connector,
    connection: str,
    transformed: Any = None,
) -> TargetShape:
    """The shape plan for loading ``table`` (see :class:`TargetShape`); FatalError when the policy
    forbids what the source needs (``create: false`` and no table, ``on_schema_change: fail`` and a
    difference, a change of type that is not a widening). ``transformed`` maps the source's columns
    to the columns the table's transforms produce."""
    existing_columns = getattr(target, "existing_columns", None)
    if existing_columns is None:
        return TargetShape(note=f"a {target.kind} target keeps its own shape")
    existing: tuple[SourceColumn, ...] | None = existing_columns(table.target)
    try:
        described = source.describe_columns(describing(request))
        if transformed is not None:
            described = transformed(described)
    except (FatalError, ConfigError) as exc:
        if existing is None:
            raise FatalError(
                f"target table {table.target} does not exist and cannot be created from the source: {exc}"
            ) from exc
        return TargetShape(note=f"the source's columns are not known before the load: {exc}")
    managed = existing is not None and _created_by_a_load(ctx, connection, str(table.target))
    policy = SchemaPolicy(table.create, OnSchemaChange(table.on_schema_change), managed)
    plan = plan_changes(table.target, existing, described, table.keys, table.cursor, policy, target.dialect)  # type: ignore[attr-defined]
    steps = tuple(target.schema_statements(plan, existing or ()))  # type: ignore[attr-defined]
    loaded = None
    if plan.ignored:
        ignored = {name.lower() for name in plan.ignored}
        loaded = tuple(c.name for c in described if c.name.lower() not in ignored)
    return TargetShape(plan, steps, loaded)


def describing(request: ReadRequest) -> ReadRequest:
    """The read request without its window or column choice: what the source returns at all."""
    return replace(request, filtered=False, columns=(), window_start=None, window_end=None)


def _created_by_a_load(ctx: RunContext, connection: str, table: str) -> bool:
    from script_factory import audit  # SQLAlchemy's tables: imported when a run writes, not to assemble

    warehouse = ctx.warehouse
    with warehouse.translate_errors("read the schema ledger"), warehouse.read_connection() as conn:
        # a run (it has a run_id) created the audit tables before its first task: no need to look for them
        return audit.created_by_a_load(conn, connection, table, ledger_exists=ctx.run_id is not None)


def log_shape(ctx: RunContext, shape: TargetShape) -> None:
    plan = shape.plan
    if plan is None:
        return
    for name in plan.missing:
        ctx.logger.warning(
            "load %s: column %s is no longer returned by the source; it stays in the table and is loaded as NULL",
            plan.table,
            name,
        )
    for name in plan.ignored:
        ctx.logger.warning(
            "load %s: the source's new column %s is not loaded (on_schema_change: ignore)", plan.table, name
        )
    for statement in shape.ddl:
        ctx.logger.info("load %s: %s", plan.table, statement)


def record_changes(conn: Any, ctx: RunContext, connection: str, shape: TargetShape) -> None:
    """One ledger row per DDL statement that ran, on ``conn`` (the load's transaction, in the warehouse)."""
    if shape.plan is None:
        return
    from script_factory import audit

    for step in shape.steps:
        audit.record_schema_change(
            conn,
            {
                "run_id": ctx.run_id,
                "project": ctx.project.name,
                "connection": connection,
                "target_table": str(shape.plan.table),
                "change": step.change,
                "column_name": step.column,
                "ddl": step.ddl,
            },
        )


def only_columns(stream: RowStream, columns: tuple[str, ...]) -> RowStream:
    """``stream`` keeping only ``columns`` (on_schema_change: ignore, for a source that cannot select)."""
    lowered = [c.lower() for c in stream.columns]
    indexes = [lowered.index(c.lower()) for c in columns if c.lower() in lowered]
    names = [stream.columns[i] for i in indexes]
    if isinstance(stream, ArrowStream):
        batches = (batch.select(indexes) for batch in stream.batches())
        return ArrowStream(names, _schema(stream, indexes), batches, stream.close)

    def chunks() -> Iterator[list[tuple[Any, ...]]]:
        for chunk in stream:
            yield [tuple(row[i] for i in indexes) for row in chunk]

    return RowStream(names, chunks(), stream.close)


def _schema(stream: ArrowStream, indexes: list[int]) -> Any:
    import pyarrow as pa

    return pa.schema([stream.schema.field(i) for i in indexes])
