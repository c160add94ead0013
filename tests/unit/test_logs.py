"""The console shows one line per event; the log file keeps the traceback; both are masked."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from utilities import logs
from utilities.secrets import Masker


def test_a_traceback_goes_to_the_file_and_not_to_the_console(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    log_file = tmp_path / "run.log"
    logs.install(log_file, Masker(["s3cr3t"]))
    try:
        try:
            raise RuntimeError("the driver said s3cr3t")
        except RuntimeError:
            logging.getLogger("test").error("it failed", exc_info=True)
    finally:
        logs.remove()
    console = capsys.readouterr().err
    assert console.count("\n") == 1 and "it failed" in console and "Traceback" not in console
    written = log_file.read_text(encoding="utf-8")
    assert "Traceback" in written and "RuntimeError: the driver said ***" in written
    assert "s3cr3t" not in written + console
