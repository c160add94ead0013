"""The project lock: one live run per project; a dead run's lock is taken over with a warning."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from script_factory.lock import ProjectLock
from utilities.errors import LockedError

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from script_factory.lock import ProjectLock
with ProjectLock(Path(sys.argv[2]), "demo"):
    print("locked", flush=True)
    time.sleep(30)
"""


def test_a_live_holder_blocks_a_second_run(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(REPO), str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError) as caught:
            ProjectLock(tmp_path, "demo").acquire()
        assert f"pid {holder.pid}" in str(caught.value) and "already running" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing: the lock is free again, and the takeover is noticed.
    lock = ProjectLock(tmp_path, "demo")
    lock.acquire()
    assert lock.previous_holder is not None and lock.previous_holder["pid"] == holder.pid
    lock.release()


def test_release_clears_the_record_so_the_next_run_sees_no_takeover(tmp_path: Path) -> None:
    with ProjectLock(tmp_path, "demo") as lock:
        assert json.loads(lock.path.read_text())["pid"] > 0
    assert lock.path.read_text() == ""
    again = ProjectLock(tmp_path, "demo")
    again.acquire()
    assert again.previous_holder is None
    again.release()


def test_a_stale_record_is_taken_over_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "demo.lock").write_text(json.dumps({"pid": 999999, "host": "h", "started": "t"}))
    with caplog.at_level(logging.WARNING), ProjectLock(tmp_path, "demo") as lock:
        assert lock.previous_holder == {"pid": 999999, "host": "h", "started": "t"}
    assert "took over the lock of project demo" in caplog.text
    time.sleep(0)
