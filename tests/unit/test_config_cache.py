"""The cache of validated project configs: a hit is what a fresh validation gives, and anything that
does not match exactly (the file, the model's code, the entry's bytes, its owner) is a miss."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from script_factory import config_cache
from script_factory.config import load_project
from script_factory.config_cache import cache_folder, cached_project
from script_factory.settings import load_settings


def _entry(home: Path) -> Path:
    return cache_folder(home / "metadata") / "sales_demo.pickle"


def _folder(home: Path) -> Path:
    return home / "customer_code" / "sales_demo"


def test_a_hit_is_the_validated_config(demo_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = cached_project(_folder(demo_home), demo_home / "metadata")
    assert fresh == load_project(_folder(demo_home))
    assert _entry(demo_home).is_file()
    assert (_entry(demo_home).parent.stat().st_mode & 0o777) == 0o700

    def refuse(folder: Path) -> None:
        raise AssertionError("validated again on a hit")

    monkeypatch.setattr("script_factory.config.load_project", refuse)
    assert cached_project(_folder(demo_home), demo_home / "metadata") == fresh


def test_a_changed_file_or_model_is_a_miss(demo_home: Path) -> None:
    metadata = demo_home / "metadata"
    cached_project(_folder(demo_home), metadata)
    yml = _folder(demo_home) / "project.yml"
    yml.write_text(yml.read_text(encoding="utf-8").replace("Demo shop", "Demo store"), encoding="utf-8")
    assert cached_project(_folder(demo_home), metadata).description.startswith("Demo store")
    sources = config_cache.MODEL_SOURCES
    extra = demo_home / "model.py"
    extra.write_text("x = 1\n")
    key = config_cache._key(_folder(demo_home), yml.read_bytes())
    config_cache.MODEL_SOURCES = (*sources, str(extra))  # an absolute path joins the root as itself
    try:
        assert config_cache._key(_folder(demo_home), yml.read_bytes()) != key
    finally:
        config_cache.MODEL_SOURCES = sources


def test_an_invalid_project_is_not_cached_and_errors_stay_the_same(demo_home: Path) -> None:
    from utilities.errors import ConfigError

    yml = _folder(demo_home) / "project.yml"
    yml.write_text(yml.read_text(encoding="utf-8").replace("strategy: merge", "strategy: upsert", 1))
    with pytest.raises(ConfigError, match="upsert"):
        cached_project(_folder(demo_home), demo_home / "metadata")
    assert not _entry(demo_home).exists()


@pytest.mark.parametrize("damage", ["truncated", "other key", "foreign object", "group writable folder"])
def test_a_bad_entry_is_ignored_and_rewritten(demo_home: Path, damage: str) -> None:
    metadata = demo_home / "metadata"
    good = cached_project(_folder(demo_home), metadata)
    entry = _entry(demo_home)
    data = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(data[:-20])
    elif damage == "other key":
        entry.write_bytes(data[: len(config_cache._FORMAT)] + b"\0" * 32 + data[len(config_cache._FORMAT) + 32 :])
    elif damage == "foreign object":
        head = data[: len(config_cache._FORMAT) + 32]
        entry.write_bytes(head + pickle.dumps({"not": "a project"}))
    else:
        entry.parent.chmod(0o770)
    assert cached_project(_folder(demo_home), metadata) == good
    if damage == "group writable folder":  # never read from, never written to
        assert not config_cache._ours(entry.parent, folder=True)
        entry.parent.chmod(0o700)
    key = config_cache._key(_folder(demo_home), (_folder(demo_home) / "project.yml").read_bytes())
    assert config_cache._read(entry, key) == good


@pytest.mark.skipif(os.name == "nt", reason="POSIX owners")
def test_an_entry_that_is_a_symlink_is_not_read(demo_home: Path, tmp_path: Path) -> None:
    metadata = demo_home / "metadata"
    cached_project(_folder(demo_home), metadata)
    entry = _entry(demo_home)
    elsewhere = tmp_path / "elsewhere.pickle"
    elsewhere.write_bytes(entry.read_bytes())
    entry.unlink()
    entry.symlink_to(elsewhere)
    key = config_cache._key(_folder(demo_home), (_folder(demo_home) / "project.yml").read_bytes())
    assert config_cache._read(entry, key) is None


def test_the_runner_reads_through_the_cache(demo_home: Path) -> None:
    from script_factory.factory import load_project_config

    project = load_project_config("sales_demo", load_settings(None))
    assert _entry(demo_home).is_file()
    assert load_project_config("sales_demo", load_settings(None)) == project
