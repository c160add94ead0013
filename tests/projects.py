"""Helpers for tests that write their own projects into a throw-away ETL home."""

from __future__ import annotations

import sqlite3
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

ITEMS_DDL = """
CREATE TABLE IF NOT EXISTS items (
    id          BIGINT PRIMARY KEY,
    name        VARCHAR(100),
    amount      NUMERIC(12,2),
    updated_at  TIMESTAMP NOT NULL
);
"""


def write_project(
    home: Path, name: str, yml: str, files: dict[str, str] | None = None, ddl: dict[str, str] | None = None
) -> Path:
    """customer_code/<name>/project.yml plus its files; ``ddl`` files go under warehouse/."""
    folder = home / "customer_code" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "project.yml").write_text(textwrap.dedent(yml).lstrip(), encoding="utf-8")
    for relative, content in (files or {}).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip(), encoding="utf-8")
    for relative, content in (ddl or {}).items():
        path = home / "warehouse" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip(), encoding="utf-8")
    return folder


def items_rows(count: int, start_id: int = 1, base: datetime = datetime(2024, 1, 1)) -> list[tuple]:
    return [
        (i, f"item {i}", f"{i}.50", (base + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S"))
        for i in range(start_id, start_id + count)
    ]


def sqlite_items(path: Path, rows: list[tuple]) -> None:
    """A SQLite source with an ``items`` table (id, name, amount, updated_at as text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT, amount NUMERIC, "
            "updated_at TEXT NOT NULL)"
        )
        conn.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)", rows)


ITEMS_PROJECT = """
project: {name}
connections:
  src:
    default: sqlite:///metadata/src.db
ddl: [{name}/001_items.sql]
tables:
  - target: items
    source: {{connection: src, query: sql/items.sql}}
    strategy: {strategy}
    keys: [id]
    cursor: updated_at
{extra}
"""


def items_project(
    home: Path,
    name: str = "items_demo",
    strategy: str = "merge",
    extra: str = "",
    query: str = "SELECT id, name, amount, updated_at FROM items",
) -> Path:
    """A one-table project loading ``items`` from metadata/src.db into the warehouse."""
    return write_project(
        home,
        name,
        ITEMS_PROJECT.format(name=name, strategy=strategy, extra=textwrap.dedent(extra)),
        files={"sql/items.sql": query},
        ddl={f"{name}/001_items.sql": ITEMS_DDL},
    )
