"""Run artifact files: timestamped names that never collide and always sort in run order."""

from __future__ import annotations

import re
from pathlib import Path


def stamped_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/<stem><suffix>``, or ``<stem>_<N><suffix>`` with N one more than any existing one.

    Runs within the same second get increasing numbers even after retention deleted earlier
    files, so the newest file of a series is always the one with the highest (stamp, N).
    """
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{re.escape(stem)}(?:_(\d+))?{re.escape(suffix)}(?:\.partial)?$")
    taken = [int(m.group(1) or 1) for p in folder.iterdir() if (m := pattern.match(p.name))]
    if not taken:
        return folder / f"{stem}{suffix}"
    return folder / f"{stem}_{max(taken) + 1}{suffix}"
