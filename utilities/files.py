"""Run artifact files: timestamped names that never collide, and the folders they go in."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from utilities.errors import ConfigError


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


def shown_path(path: Path | None, home: Path | None) -> str:
    """``path`` relative to ``home`` when it is inside it (as a run's summary and e-mail show it), else
    whole; ``-`` for no path."""
    if path is None:
        return "-"
    if home is not None:
        try:
            return str(path.relative_to(home))
        except ValueError:
            pass
    return str(path)


def check_folders(home: Path, folders: Iterable[Path]) -> None:
    """ConfigError naming the first file (or broken link) that stands where one of ``folders``, or a
    folder between ``home`` and it, must be; missing folders are fine (the run creates them)."""
    for folder in folders:
        current = home
        for part in folder.relative_to(home).parts:
            current = current / part
            if current.is_dir():
                continue
            if current.exists() or current.is_symlink():
                what = "a file" if current.exists() else "a broken link"
                raise ConfigError(
                    f"{current} is {what} where the run needs a folder (for its logs, outputs and locks); "
                    f"remove or rename that {what[2:]}, then run again"
                )
            break  # missing: the run creates it and everything below it
