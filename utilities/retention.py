"""Retention: prune run artifacts (logs, outputs) by age in days and by number of runs kept."""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from pathlib import Path

logger = logging.getLogger(__name__)

# <name>_<YYYYmmdd_HHMMSS>[_N].<ext>: the name groups files of one series (one log, one output).
_STAMPED = re.compile(r"^(?P<series>.+)_(?P<stamp>\d{8}_\d{6})(?:_(?P<n>\d+))?\.(?P<ext>[A-Za-z0-9]+)$")


def prune(
    folder: Path, *, keep_days: int | None, keep_runs: int | None, protect: set[Path] | None = None
) -> list[Path]:
    """Delete timestamped files in ``folder`` older than ``keep_days`` or beyond the newest ``keep_runs``.

    Files are grouped into series by the name before the timestamp, so each output keeps its own
    ``keep_runs`` newest files. Files in ``protect`` (this run's) are never deleted. Returns what
    was deleted.
    """
    if not folder.is_dir():
        return []
    protect = {p.resolve() for p in (protect or set())}
    series: dict[str, list[tuple[str, int, Path]]] = defaultdict(list)
    for path in folder.iterdir():
        match = _STAMPED.match(path.name)
        if path.is_file() and match:
            series[f"{match['series']}.{match['ext']}"].append((match["stamp"], int(match["n"] or 1), path))
    cutoff = time.time() - keep_days * 86400 if keep_days is not None else None
    deleted: list[Path] = []
    for files in series.values():
        files.sort(reverse=True)  # newest first
        for index, (_, _, path) in enumerate(files):
            too_many = keep_runs is not None and index >= keep_runs
            too_old = cutoff is not None and path.stat().st_mtime < cutoff
            if (too_many or too_old) and path.resolve() not in protect:
                path.unlink(missing_ok=True)
                deleted.append(path)
    if deleted:
        logger.info("retention: deleted %d old file(s) in %s", len(deleted), folder)
    return deleted
