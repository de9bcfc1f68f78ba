"""Helpers shared by the local runtime tests (a module of its own: ``conftest`` is not for importing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from pilothouse.runtime.protocol import OwnerRef

SERVER = r"""
import http.server, os, subprocess, sys
print(f"pid={os.getpid()} cuda={os.environ.get('CUDA_VISIBLE_DEVICES')!r}", flush=True)
if os.environ.get("SPAWN_GRANDCHILDREN"):
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    in_group = subprocess.Popen(sleeper)
    escaped = subprocess.Popen(sleeper, start_new_session=True)
    print(f"grandchildren={in_group.pid},{escaped.pid}", flush=True)
if os.environ.get("FAIL_WITH"):
    with open(os.environ["PILOTHOUSE_TERMINATION_LOG"], "w") as f:
        f.write(os.environ["FAIL_WITH"] + "\n")
    print("failing on purpose", flush=True)
    sys.exit(3)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/v2/health/ready" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler).serve_forever()
"""


WORKER = r"""
import os, signal, subprocess, sys, time

KEYS = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "CUDA_VISIBLE_DEVICES",
        "PILOTHOUSE_JOB_NAME", "PILOTHOUSE_JOB_ATTEMPT", "GREETING"]
print("env " + " ".join(f"{k}={os.environ.get(k, '-')}" for k in KEYS) + f" cwd={os.getcwd()}", flush=True)
plan = dict(arg.split("=", 1) for arg in sys.argv[1:])
steps = plan.get(os.environ["RANK"], plan.get("all", "exit:0")).split("+")


def on_term(signum, frame):
    print("got SIGTERM", flush=True)
    sys.exit(0)


for step in steps:
    action, _, value = step.partition(":")
    if action == "grandchildren":
        sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
        in_group = subprocess.Popen(sleeper)
        escaped = subprocess.Popen(sleeper, start_new_session=True)
        print(f"grandchildren={in_group.pid},{escaped.pid}", flush=True)
    elif action == "trap":
        signal.signal(signal.SIGTERM, on_term)
    elif action == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif action == "sleep":
        print("ready", flush=True)
        time.sleep(float(value))
    elif action == "exit":
        sys.exit(int(value))
"""
"""A job worker whose behaviour its arguments choose: ``RANK=step+step`` or ``all=step+step`` with steps
``exit:N``, ``sleep:S`` (prints ``ready`` first), ``trap`` (exit 0 on SIGTERM), ``ignore`` (SIGTERM) and
``grandchildren`` (one in its process group, one escaped with setsid). It prints its environment first."""


def wait_for(
    condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def owner(name: str, kind: str = "ModelEndpoint") -> OwnerRef:
    return OwnerRef(kind=kind, namespace="default", name=name, uid=f"uid-{name}")
