"""The machine a benchmark ran on: CPU, cores, memory, OS, Python, servers, packages, repository commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from harness import databases
from harness.config import REPO_DIR, BenchConfig

PACKAGES = (
    "SQLAlchemy", "psycopg", "PyMySQL", "pyarrow", "duckdb", "duckdb-extension-tpch", "pandas", "dlt",
    "sling-linux-amd64",
)  # fmt: skip
TOOLS = ("pgcopydb", "pgloader")


def describe(config: BenchConfig) -> dict[str, str]:
    pg, my = databases.server_versions(config.postgres, config.mariadb)
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory(),
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "PostgreSQL": pg,
        "MariaDB": my,
        "load average at start (1/5/15 min)": load_average(),
        "packages": ", ".join(_package_versions()),
        "tools": ", ".join(_tool_versions()),
        "repository commit": _commit(),
    }


def load_average() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _package_versions() -> list[str]:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def _tool_versions() -> list[str]:
    """The specialist tools' versions, from their own ``--version`` (Debian packages, not pip)."""
    found = []
    for tool in TOOLS:
        try:
            done = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = [
            line for line in (done.stdout + done.stderr).splitlines() if "version" in line and "Running" not in line
        ]
        if lines:
            found.append(lines[0].strip())
    return found


def _commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown (not a git checkout)"
    changed = [line for line in git("status", "--porcelain").splitlines() if not line.endswith("bench/RESULTS.md")]
    return commit + (" (with uncommitted changes)" if changed else "")
