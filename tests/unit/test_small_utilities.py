"""Utilities: the cursor codec, masking, SQL splitting, retention and the strategy rule."""

from __future__ import annotations

import logging
import os
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from script_factory.config import Strategy
from script_factory.load_strategies import effective_strategy
from script_factory.request import LoadType
from script_factory.settings import secret_values
from script_factory.window import Window
from utilities import logs
from utilities.dates import decode_cursor, encode_cursor
from utilities.retention import prune
from utilities.secrets import Masker, Secret
from utilities.sql_text import split_statements, strip_comments


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 3, 29, 2, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(2026, 1, 1, 0, 0, 0, 1),
        datetime(1969, 12, 31, 23, 59, 59),
        date(1900, 1, 1),
        -9223372036854775808,
        42,
    ],
)
def test_the_watermark_codec_is_lossless(value: object) -> None:
    text = encode_cursor(value)  # type: ignore[arg-type]
    back = decode_cursor(text)
    assert back == value and type(back) is type(value)
    if isinstance(value, datetime):
        assert back.tzinfo == value.tzinfo  # type: ignore[union-attr]


def test_secret_never_prints_itself() -> None:
    secret = Secret("hunter2!")
    assert "hunter2" not in f"{secret} {secret!r} {[secret]}"
    assert secret.reveal() == "hunter2!"


def test_masker_hides_known_values_url_passwords_and_key_values() -> None:
    mask = Masker(["s3cr3t-token"])
    text = mask("token s3cr3t-token; postgresql://etl:p%40ss@db:5432/x; mysql password=abc123 api_key: zz99zz")
    assert "s3cr3t-token" not in text and "p%40ss" not in text and "abc123" not in text and "zz99zz" not in text
    assert "postgresql://etl:***@db:5432/x" in text
    denied = "Access denied for user 'etl'@'10.0.0.1' (using password: NO); password: NO-secret"
    assert mask(denied) == "Access denied for user 'etl'@'10.0.0.1' (using password: NO); password: ***"


def test_secret_values_come_from_secret_names_and_url_passwords() -> None:
    found = secret_values(
        {
            "ETL_CONN_ERP": "postgresql://etl:p%40ss@db/x",
            "ETL_CONN_LAKE_SECRET_ACCESS_KEY": "AKIASECRETVALUE",
            "ETL_SMTP_PASSWORD": "mailpass",
            "ETL_CONN_LOCAL": "sqlite:///metadata/x.db",
            "HOME": "/root",
        }
    )
    assert {"p%40ss", "p@ss", "AKIASECRETVALUE", "mailpass"} <= set(found)
    assert "/root" not in found and "sqlite:///metadata/x.db" not in found


def test_log_files_mask_secrets_in_messages_and_tracebacks(tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    logs.install(log_file, Masker(["topsecret99"]))
    try:
        log = logging.getLogger("test.masking")
        log.info("connecting with topsecret99")
        try:
            raise RuntimeError("failed for postgresql://u:topsecret99@h/db")
        except RuntimeError:
            log.exception("boom")
    finally:
        logs.remove()
    text = log_file.read_text(encoding="utf-8")
    assert "topsecret99" not in text and text.count("***") >= 2


def test_split_statements_respects_quotes_comments_and_dollar_bodies() -> None:
    script = """
        -- a comment; not a split
        INSERT INTO t VALUES ('a;b', "c;d"); /* x; y */
        CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
        SELECT 'it''s; fine';
        -- trailing comment only
    """
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[1].endswith("$body$ SELECT 1; $body$ LANGUAGE sql")
    assert statements[2] == "SELECT 'it''s; fine'"


def test_strip_comments_removes_bind_looking_text_in_comments_only() -> None:
    sql = "SELECT ':kept' AS x -- filters on :start\nFROM t /* :end */ WHERE a = :value"
    assert strip_comments(sql) == "SELECT ':kept' AS x \nFROM t   WHERE a = :value"


def _touch(folder: Path, name: str, age_days: float = 0) -> Path:
    path = folder / name
    path.write_text("x", encoding="utf-8")
    stamp = time.time() - age_days * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_retention_keeps_the_newest_runs_per_series_and_drops_old_files(tmp_path: Path) -> None:
    for day in range(1, 6):
        _touch(tmp_path, f"p_2026010{day}_000000.log")
        _touch(tmp_path, f"daily_2026010{day}_000000.csv")
    old = _touch(tmp_path, "p_20250101_000000.log", age_days=90)
    unrelated = _touch(tmp_path, "notes.txt", age_days=900)
    deleted = prune(tmp_path, keep_days=30, keep_runs=3)
    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert old in deleted and unrelated.exists()
    assert remaining == sorted(
        ["notes.txt"]
        + [f"p_2026010{d}_000000.log" for d in (3, 4, 5)]
        + [f"daily_2026010{d}_000000.csv" for d in (3, 4, 5)]
    )


def test_retention_never_deletes_protected_files(tmp_path: Path) -> None:
    keep = _touch(tmp_path, "p_20200101_000000.log", age_days=2000)
    prune(tmp_path, keep_days=1, keep_runs=1, protect={keep})
    assert keep.exists()


WINDOW = Window(start=datetime(2026, 1, 1), end=datetime(2026, 2, 1), filtered=True, start_reason="x")
UNBOUNDED = Window(start=datetime(1900, 1, 1), end=None, filtered=False, start_reason="full load")


@pytest.mark.parametrize(
    ("declared", "load_type", "window", "cursor", "explicit", "expected"),
    [
        (Strategy.MERGE, LoadType.FULL, UNBOUNDED, "ts", False, Strategy.REPLACE),
        (Strategy.APPEND, LoadType.FULL, WINDOW, "ts", True, Strategy.DELETE_INSERT),
        (Strategy.MERGE, LoadType.FULL, WINDOW, None, True, Strategy.REPLACE),
        (Strategy.MERGE, LoadType.FULL, WINDOW, "ts", True, Strategy.MERGE),
        (Strategy.REPLACE, LoadType.FULL, WINDOW, "ts", True, Strategy.DELETE_INSERT),
        (Strategy.APPEND, LoadType.INCREMENTAL, WINDOW, "ts", False, Strategy.APPEND),
        (Strategy.APPEND, LoadType.INCREMENTAL, WINDOW, "ts", True, Strategy.DELETE_INSERT),
        (Strategy.MERGE, LoadType.INCREMENTAL, WINDOW, "ts", True, Strategy.MERGE),
        (Strategy.REPLACE, LoadType.INCREMENTAL, WINDOW, None, False, Strategy.REPLACE),
    ],
)
def test_effective_strategy(declared, load_type, window, cursor, explicit, expected) -> None:
    assert effective_strategy(declared, load_type, window, cursor, explicit) is expected


def test_progress_with_a_total_says_the_share_and_an_eta(caplog: pytest.LogCaptureFixture) -> None:
    import io
    import logging
    import time

    from utilities.progress import Progress

    progress = Progress("load t", interval=0, stream=io.StringIO(), total=1000)
    time.sleep(0.01)
    with caplog.at_level(logging.INFO, logger="utilities.progress"):
        progress.advance(250)
    assert "250 of 1,000 rows so far" in caplog.text and ", ETA " in caplog.text


def test_the_script_version_names_the_commit_the_docker_image_was_built_from(tmp_path: Path) -> None:
    from utilities.version import script_version

    assert script_version("0.1.0", tmp_path) == "0.1.0"  # no .git, no .git-commit
    (tmp_path / ".git-commit").write_text("948ce7ac604804202aeebba6e436b17644bc2531\n", encoding="utf-8")
    assert script_version("0.1.0", tmp_path) == "0.1.0+948ce7a"


def test_malloc_arenas_are_limited_where_glibc_runs() -> None:
    """mallopt is found among the process's own symbols (no ctypes.util.find_library, which is slow)."""
    import platform
    import sys

    from utilities.memory import limit_malloc_arenas

    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        pytest.skip("glibc only")
    assert limit_malloc_arenas() is True


@pytest.mark.parametrize("preset", [None, "jemalloc"])
def test_arrow_uses_the_system_allocator_unless_the_user_chose_one(preset: str | None) -> None:
    """After prefer_system_arrow_pool, pyarrow allocates through glibc malloc (the arena-limited allocator);
    a pool the user set in ARROW_DEFAULT_MEMORY_POOL is kept."""
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only: elsewhere Arrow's own default stays")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if preset:
        env["ARROW_DEFAULT_MEMORY_POOL"] = preset
    code = (
        "from utilities.memory import prefer_system_arrow_pool\n"
        "chosen = prefer_system_arrow_pool()\n"
        "import pyarrow as pa\n"
        "pa.array([1, 2, 3])\n"
        "print(chosen, pa.default_memory_pool().backend_name)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=repo, capture_output=True, text=True, check=True)
    assert done.stdout.split() == (["False", "jemalloc"] if preset else ["True", "system"])
