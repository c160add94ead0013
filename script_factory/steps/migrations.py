"""Warehouse DDL: apply the project's ``warehouse/`` files once each, in order, recorded in ``etl_migrations``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from script_factory.context import RunContext
from script_factory.task import StepResult
from utilities.dates import utc_now
from utilities.errors import FatalError
from utilities.sql_text import split_statements


@dataclass(frozen=True)
class DdlFile:
    """A DDL file: its name under ``warehouse/`` (the ledger key) and its text."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def apply_ddl(ctx: RunContext, *, files: tuple[DdlFile, ...]) -> StepResult:
    """Apply each file not yet in the ledger, each in its own transaction with its ledger row.

    A file already applied whose text has changed is an error: add a new numbered file instead, so
    every warehouse replays the same history.
    """
    from script_factory import audit  # SQLAlchemy's tables: imported when a run writes, not to assemble

    target = ctx.warehouse
    applied = 0
    for ddl in files:
        with target.read_connection() as conn:
            previous = audit.applied_migration(conn, ddl.name)
        if previous is not None:
            if previous["checksum"] != ddl.checksum:
                raise FatalError(
                    f"warehouse/{ddl.name} changed after it was applied on {previous['applied_at']}; "
                    f"restore it and put the change in a new numbered file"
                )
            continue
        with target.translate_errors(f"apply warehouse/{ddl.name}"), target.transaction() as conn:
            for statement in split_statements(ddl.sql):
                conn.exec_driver_sql(statement)
            conn.execute(
                audit.etl_migrations.insert().values(
                    filename=ddl.name,
                    checksum=ddl.checksum,
                    project=ctx.project.name,
                    run_id=ctx.run_id,
                    applied_at=utc_now(),
                )
            )
        ctx.logger.info("applied warehouse/%s", ddl.name)
        applied += 1
    return StepResult(message=f"{applied} DDL file(s) applied, {len(files) - applied} already in place")


def preview_ddl(ctx: RunContext, *, files: tuple[DdlFile, ...]) -> str:
    return "\n".join(
        f"-- warehouse/{f.name} (applied once, recorded in etl_migrations)\n{f.sql.strip()}" for f in files
    )
