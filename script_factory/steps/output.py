"""Output steps: stream a query's rows into ``metadata/output/<project>/<name>_<YYYYmmdd_HHMMSS>.csv``."""

from __future__ import annotations

import csv
import os

from connectors.base import ReadRequest
from script_factory.context import RunContext
from script_factory.task import StepResult
from utilities.files import stamped_path


def write_output(
    ctx: RunContext, *, name: str, connection: str, sql: str, delete_after_run: bool, upload: str | None = None
) -> StepResult:
    """Write the CSV to a ``.partial`` file and rename it when complete: never a half-written output."""
    stamp = ctx.now.astimezone().strftime("%Y%m%d_%H%M%S")
    path = stamped_path(ctx.output_dir, f"{name}_{stamp}", ".csv")
    partial_path = path.with_name(path.name + ".partial")
    rows = 0
    source = ctx.connector(connection)
    request = ReadRequest(sql=sql, params=ctx.bind_values(), chunk_size=ctx.project.chunk_size)
    try:
        with source.read(request) as stream, open(partial_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(stream.columns)
            for chunk in stream:
                writer.writerows(chunk)
                rows += len(chunk)
        os.replace(partial_path, path)
    finally:
        partial_path.unlink(missing_ok=True)
    ctx.logger.info(
        "output %s: %s rows -> %s%s", name, f"{rows:,}", path, " (deleted after the run)" if delete_after_run else ""
    )
    message = f"{rows:,} rows -> {path.name}"
    if upload:
        where = ctx.connector(upload).put_file(path, f"{ctx.project.name}/{path.name}")
        ctx.logger.info("output %s: uploaded to %s", name, where)
        message += f", uploaded to {where}"
    return StepResult(rows=rows, files=(path,), message=message, delete_files=delete_after_run)


def preview_output(
    ctx: RunContext, *, name: str, connection: str, sql: str, delete_after_run: bool, upload: str | None = None
) -> str:
    source = ctx.connector(connection)
    uploaded = f" and uploaded through connection {upload!r}" if upload else ""
    return f"-> {ctx.output_dir}/{name}_<YYYYmmdd_HHMMSS>.csv{uploaded}\n" + source.describe_read(
        ReadRequest(sql=sql, params=ctx.bind_values())
    )
