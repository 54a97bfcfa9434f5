"""One run per run folder: the lock refuses a second holder by name, survives nothing of a dead one."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasoner.errors import ReasonerError
from reasoner.runlock import hold

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "configs" / "demo.yaml"


def test_second_holder_is_refused_naming_the_first(tmp_path):
    lock = tmp_path / "run" / "run.lock"
    with hold(lock) as me:
        assert json.loads(lock.read_text())["pid"] == os.getpid() == me.pid
        with pytest.raises(ReasonerError) as err:
            with hold(lock):
                pass
    message = str(err.value)
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in message and str(tmp_path / "run") in message
    assert lock.read_text() == ""  # released: emptied, never deleted
    with hold(lock):  # and free again
        pass


def test_lock_left_by_a_dead_process_is_taken_over(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / "run.lock"
    record = {"pid": dead.pid, "host": socket.gethostname(), "started": "then", "command": "reasoner run x"}
    lock.write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="reasoner.runlock"), hold(lock) as me:
        assert json.loads(lock.read_text())["pid"] == me.pid
    assert f"taking over from pid {dead.pid}" in caplog.text


def test_lock_file_is_readable_by_the_group(tmp_path):
    old = os.umask(0o002)
    try:
        with hold(tmp_path / "run.lock"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "run.lock").stat().st_mode & 0o777 == 0o664


def test_two_runs_in_one_folder_second_exits_2_naming_the_first(tmp_path, demo_smoke):
    """The second `reasoner run` on the same output folder stops at once; the first is not disturbed."""
    args = [sys.executable, "-m", "reasoner.cli", "run", str(DEMO), *demo_smoke, f"output_dir={tmp_path}"]
    first = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    lock = tmp_path / "demo" / "run.lock"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (lock.is_file() and lock.read_text().strip()):
            time.sleep(0.1)
        assert json.loads(lock.read_text())["pid"] == first.pid
        second = subprocess.run(args, capture_output=True, text=True, timeout=120)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert second.returncode == 2
    assert f"pid {first.pid} on host" in second.stderr and "another `reasoner run`" in second.stderr
    assert "Traceback" not in second.stderr
    # The kill released the lock: the next run takes it over (and would resume).
    with hold(lock):
        pass
