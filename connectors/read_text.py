"""The text of a SQL read as ``--dry-run`` prints it, kept so a dry run need not import SQLAlchemy.

The read a run sends (:meth:`connectors.sql.SqlConnector.select_for`) depends only on the request's
shape -- the query text or table, the columns, the cursor, whether it is windowed -- and on the
connector's dialect; the window's values and the query's parameters travel as bind parameters. So
the compiled text and the names of its bound values are stored under a hash of exactly those, plus
the code that compiles them (connectors/sql.py, the connector's module, SQLAlchemy's version file).
An entry is written only after checking that it gives back what SQLAlchemy just printed, and is
read only from a folder of the current user that nobody else can write; anything else is a miss
and SQLAlchemy compiles the read, as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

_FORMAT = "etl-read-text 1"
_folder: Path | None = None


@dataclass(frozen=True)
class ReadText:
    """The compiled read, the query parameters it binds and the window bounds it binds, in order."""

    text: str
    params: tuple[str, ...]
    window: tuple[str, ...]

    def values(self, request: Any) -> dict[str, Any] | None:
        """The bound values as the dry run shows them (None when a name is not one this entry knows)."""
        window = {"window_start": request.window_start, "window_end": request.window_end}
        if any(name not in request.params for name in self.params) or any(n not in window for n in self.window):
            return None
        return {**{n: request.params[n] for n in self.params}, **{n: window[n] for n in self.window}}

    def shown(self, request: Any) -> str | None:
        values = self.values(request)
        if values is None:
            return None
        return f"{self.text}\n-- bound: {', '.join(f'{k}={v!r}' for k, v in values.items()) or '(none)'}"


@contextmanager
def kept_in(folder: Path) -> Iterator[None]:
    """Reads compiled while the block runs are looked up in, and added to, ``folder``."""
    global _folder
    previous, _folder = _folder, folder
    try:
        yield
    finally:
        _folder = previous


def key(connector: Any, request: Any) -> str | None:
    """The entry's name for ``request`` read by ``connector``, or None when nothing is kept."""
    if _folder is None:
        return None
    cls = type(connector)
    digest = hashlib.sha256(_FORMAT.encode())
    head = connector.url.reveal().partition("://")[0]
    table = request.table
    shape = [
        f"{cls.__module__}.{cls.__qualname__}",
        connector.driver,
        head,
        request.sql,
        None if table is None else [table.schema, table.name],
        list(request.params),
        request.cursor,
        bool(request.filtered),
        request.window_start is None,
        request.window_end is None,
        list(request.columns),
        sys.version,
    ]
    part = json.dumps(shape, default=str).encode()
    digest.update(len(part).to_bytes(8, "little") + part)
    for source in _code_files(cls):
        try:
            data = source.read_bytes()
        except OSError:
            return None
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def _code_files(cls: type) -> list[Path]:
    files = [Path(__file__).with_name("sql.py"), Path(sys.modules[cls.__module__].__file__ or "")]
    spec = find_spec("sqlalchemy")  # its __init__.py holds __version__: an upgrade changes the key
    if spec is not None and spec.origin:
        files.append(Path(spec.origin))
    return files


def lookup(name: str | None) -> ReadText | None:
    if name is None or _folder is None:
        return None
    entry = _folder / f"{name}.json"
    try:
        if not (_ours(_folder, folder=True) and _ours(entry, folder=False)):
            return None
        data = json.loads(entry.read_text(encoding="utf-8"))
        if data.get("format") != _FORMAT or data.get("key") != name:
            return None
        return ReadText(str(data["text"]), tuple(map(str, data["params"])), tuple(map(str, data["window"])))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def store(name: str | None, read: ReadText) -> None:
    """Write the entry atomically; failing costs only speed."""
    if name is None or _folder is None:
        return
    data = {"format": _FORMAT, "key": name, "text": read.text, "params": read.params, "window": read.window}
    try:
        _folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _ours(_folder, folder=True):
            return
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=_folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out)
            os.replace(temporary, _folder / f"{name}.json")
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        pass


def verified(text: str, params: Mapping[str, Any], compiled_params: Mapping[str, Any]) -> ReadText:
    """The entry for a read SQLAlchemy compiled (``params``: the query's bound values, ``compiled_params``:
    the statement's), to be kept only if :meth:`ReadText.values` gives back the same values."""
    return ReadText(text, tuple(params), tuple(k for k in compiled_params if k.startswith("window_")))


def _ours(path: Path, folder: bool) -> bool:
    """A folder (or regular file) of the current user that nobody else can write."""
    info = path.lstat()
    if not (stat.S_ISDIR(info.st_mode) if folder else stat.S_ISREG(info.st_mode)):
        return False
    if os.name == "nt":
        return True
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
