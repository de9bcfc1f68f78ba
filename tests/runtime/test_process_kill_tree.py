"""kill_tree signals each process of a tree exactly once per step, so a worker's SIGTERM handler runs once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
from local_runtime_support import wait_for

from pilothouse.runtime.local.process import kill_tree

COUNTING = r"""
import signal, subprocess, sys, time

def on_term(signum, frame):
    print("SIGTERM", flush=True)
    time.sleep(0.5)  # a slow handler, like a checkpoint: a second SIGTERM would land in here
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
if sys.argv[1] == "leader":
    helper = subprocess.Popen([sys.executable, "-c", sys.argv[2], "helper", ""], stdout=sys.stdout)
print("ready", flush=True)
time.sleep(60)
"""


def test_each_process_gets_sigterm_once_and_exits_from_its_handler(tmp_path: Path) -> None:
    log_path = tmp_path / "tree.log"
    with log_path.open("wb") as log:
        leader = subprocess.Popen(
            [sys.executable, "-c", COUNTING, "leader", COUNTING],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for(lambda: log_path.read_text().count("ready") == 2, what="leader and helper ready")
    started = time.monotonic()
    code = kill_tree(leader.pid, psutil.Process(leader.pid).create_time(), grace=5.0, child=leader)
    assert code == 0  # left through its handler, not killed
    assert time.monotonic() - started < 5.0  # no SIGKILL escalation was needed
    assert log_path.read_text().count("SIGTERM") == 2  # once for the leader, once for its helper
