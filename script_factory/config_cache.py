"""The validated project config, kept between runs so start-up skips pydantic (its import and its validators).

A project's ``ProjectConfig`` depends only on its ``project.yml`` bytes, its folder, and the code of the
config model; validation reads no environment variable and no other file. So the entry's key is a
hash of exactly those (plus the Python version and pydantic's ``version.py``, read without importing
pydantic), and a hit is the same object a fresh validation returns. The entry holds only the plain
dataclasses of config_specs.py, so reading it imports no pydantic. The cache lives in
``metadata/cache/config/`` (one file per project, replaced atomically) and is a pickle: it is only read
from a directory this runner created for itself, owned by the user running it and writable by no one
else, and from a file owned by that user. Any mismatch or error (a changed file, a stale or truncated
entry, another owner, a class that moved) is a miss: the project is validated again and the entry
rewritten. An invalid project is never cached.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pickle
import stat
import sys
import tempfile
from pathlib import Path

from script_factory.config_specs import ProjectConfig

logger = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parent.parent
#: the modules whose code decides what a project.yml validates into (the pickled classes live there)
MODEL_SOURCES = (
    "script_factory/config.py",
    "script_factory/config_models.py",
    "script_factory/config_specs.py",
    "script_factory/config_types.py",
    "script_factory/transform_spec.py",
    "script_factory/settings.py",
    "connectors/base.py",
    "connectors/columns.py",
    "connectors/schema.py",
    "data_quality_checks/thresholds.py",
)
_FORMAT = b"etl-config-cache 2\n"
_DIGEST = hashlib.sha256().digest_size


def cache_folder(metadata: Path) -> Path:
    return metadata / "cache" / "config"


def cached_project(folder: Path, metadata: Path) -> ProjectConfig:
    """``load_project(folder)``, from the cache under ``metadata`` when the entry's key still matches."""
    from script_factory.config import load_project

    file = folder / "project.yml"
    try:
        key = _key(folder, file.read_bytes())
    except OSError:
        return load_project(folder)  # it names the missing or unreadable file
    entry = cache_folder(metadata) / f"{folder.name}.pickle"
    hit = _read(entry, key)
    if hit is not None:
        return hit
    project = load_project(folder)
    if file.is_file():
        _write(entry, key, project)
    return project


def _key(folder: Path, project_yml: bytes) -> bytes:
    digest = hashlib.sha256(_FORMAT)
    for part in (sys.version.encode(), _pydantic_version(), str(folder).encode(), project_yml):
        digest.update(len(part).to_bytes(8, "little") + part)
    for source in MODEL_SOURCES:
        code = (_ROOT / source).read_bytes()
        digest.update(len(code).to_bytes(8, "little") + code)
    return digest.digest()


def _pydantic_version() -> bytes:
    """pydantic's version.py (its version and the pydantic-core version it requires), found without
    importing pydantic: a hit must not pay for the import the cache is there to skip."""
    spec = importlib.util.find_spec("pydantic")
    if spec is None or not spec.submodule_search_locations:
        raise OSError("pydantic is not installed")
    return (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_bytes()


def _read(entry: Path, key: bytes) -> ProjectConfig | None:
    try:
        if not (_ours(entry.parent, folder=True) and _ours(entry, folder=False)):
            return None
        data = entry.read_bytes()
        if data[: len(_FORMAT)] != _FORMAT or data[len(_FORMAT) : len(_FORMAT) + _DIGEST] != key:
            return None
        project = pickle.loads(data[len(_FORMAT) + _DIGEST :])
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any bad entry is a miss: validate again, write it anew
        logger.debug("config cache %s ignored: %s: %s", entry, type(exc).__name__, exc)
        return None
    return project if isinstance(project, ProjectConfig) else None


def _ours(path: Path, folder: bool) -> bool:
    """Whether ``path`` is a folder (or a regular file) of the current user that nobody else can write."""
    info = path.lstat()
    kind_ok = stat.S_ISDIR(info.st_mode) if folder else stat.S_ISREG(info.st_mode)
    if not kind_ok:
        return False
    if os.name == "nt":  # no POSIX owner; the folder sits in the runner's own metadata/ folder
        return True
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _write(entry: Path, key: bytes, project: ProjectConfig) -> None:
    """Replace the entry atomically (a reader sees the old file or the new one); failures only cost speed."""
    try:
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _ours(entry.parent, folder=True):
            return
        data = _FORMAT + key + pickle.dumps(project, protocol=pickle.HIGHEST_PROTOCOL)
        handle, temporary = tempfile.mkstemp(prefix=f".{entry.name}.", dir=entry.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, entry)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except Exception as exc:  # noqa: BLE001 - a read-only home still runs, it just validates every time
        logger.debug("config cache %s not written: %s: %s", entry, type(exc).__name__, exc)
