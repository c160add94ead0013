"""Our runner's peak RSS split into imports and buffers.

One more (untimed) run of ours with ``python -X importtime`` lists every module the run imported; the
ones imported at the top level (not from inside another import: those come along with their parent),
in the order the run imported them, are then imported by a fresh interpreter of the same venv, run
from the repository as a run is, under the same GNU time measurement as the timed runs. Its peak RSS
is the imports' share ("imports"); what the timed runs' median peak adds to it is the data in flight
("buffers": batches, queues, the COPY buffers, allocator slack).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.config import REPO_DIR, BenchConfig, child_environment
from harness.measure import run_measured

TOP_LEVEL = re.compile(r"^import time:\s+\d+ \|\s+\d+ \| (\S+)\s*$")  # one space: not nested in an import
PROBE = """
import importlib, sys
sys.path.insert(0, sys.argv[1])
failed = []
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name)
print(f"{len(sys.modules)} modules loaded; not importable on their own: {failed}")
"""


@dataclass(frozen=True)
class Footprint:
    imports_mb: float
    modules: int  # top-level imports replayed


def top_level_imports(importtime_output: str) -> list[str]:
    """The modules ``-X importtime`` shows at nesting level 0, in order, each once."""
    names: list[str] = []
    for line in importtime_output.splitlines():
        match = TOP_LEVEL.match(line)
        if match and match.group(1) not in names:
            names.append(match.group(1))
    return names


def measure_imports(config: BenchConfig, argv: Sequence[str], env: dict[str, str], tag: str) -> Footprint | None:
    """Run ``argv`` (ours: python, script_runner.py, ...) once with ``-X importtime``, then replay its
    top-level imports in a fresh interpreter and measure that one's peak RSS. None if the run failed."""
    python, *rest = argv
    log = config.logs_dir / f"{tag}_importtime.log"
    traced = run_measured([python, "-X", "importtime", *rest], child_environment(env), REPO_DIR, log, config.timeout)
    if not traced.ok:
        return None
    names = top_level_imports(log.read_text(encoding="utf-8", errors="replace"))
    probe_log = config.logs_dir / f"{tag}_imports_only.log"
    probe = run_measured(
        [python, "-c", PROBE, str(REPO_DIR), *names], child_environment(env), REPO_DIR, probe_log, config.timeout
    )
    if not probe.ok:
        return None
    return Footprint(imports_mb=probe.peak_rss_mb, modules=len(names))
