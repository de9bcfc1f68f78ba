"""Fixtures for the local runtime tests: a tiny HTTP server to run as a replica, runtimes that always clean
up, and a safety net that kills (and reports) any process a test left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

# The suite runs in importlib mode with only tests/ on sys.path; the helpers next to this file are
# imported by plain name, so add this directory (last: it must shadow nothing) before the tests import them.
sys.path.append(str(Path(__file__).parent))

from local_runtime_support import SERVER, WORKER, owner

from pilothouse.api.modelendpoint import ModelSource, Resources
from pilothouse.runtime.local import Backoff, LocalRuntime
from pilothouse.runtime.protocol import JobRun, WorkloadSpec


@pytest.fixture
def server_script(tmp_path: Path) -> Path:
    path = tmp_path / "server.py"
    path.write_text(SERVER)
    return path


@pytest.fixture
def workload(server_script: Path) -> Callable[..., WorkloadSpec]:
    def make(
        name: str = "demo",
        replicas: int = 1,
        revision: int = 1,
        gpus: int = 0,
        env: dict[str, str] | None = None,
    ) -> WorkloadSpec:
        return WorkloadSpec(
            owner=owner(name),
            revision=revision,
            replicas=replicas,
            model=ModelSource(command=[sys.executable, str(server_script)]),
            resources=Resources(accelerators={"nvidia.com/gpu": gpus} if gpus else {}),
            model_name=name,
            env=env or {},
        )

    return make


@pytest.fixture
def worker_script(tmp_path: Path) -> Path:
    path = tmp_path / "worker.py"
    path.write_text(WORKER)
    return path


@pytest.fixture
def job(worker_script: Path) -> Callable[..., JobRun]:
    """``job("train", 2, "all=sleep:60", "1=exit:3", gpus=1)``: a JobRun of the test worker."""

    def make(
        name: str = "train",
        workers: int = 1,
        *plan: str,
        gpus: int = 0,
        attempt: int = 1,
        deadline: int | None = None,
        env: dict[str, str] | None = None,
        working_dir: str | None = None,
        command: list[str] | None = None,
    ) -> JobRun:
        return JobRun(
            owner=owner(name, kind="Job"),
            attempt=attempt,
            workers=workers,
            command=command or [sys.executable, str(worker_script), *plan],
            resources=Resources(accelerators={"nvidia.com/gpu": gpus} if gpus else {}),
            env=env or {},
            working_dir=working_dir,
            active_deadline_seconds=deadline,
        )

    return make


_MARKERS = ("PILOTHOUSE_TERMINATION_LOG", "PILOTHOUSE_JOB_WORKER")


def _leftovers(runtime_dir: Path) -> list[psutil.Process]:
    """Processes (children and escaped grandchildren alike) started for replicas or job workers under
    ``runtime_dir``."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            environ = proc.environ()
            if any(environ.get(key, "").startswith(str(runtime_dir)) for key in _MARKERS):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "runtime"
    yield directory
    leftovers = _leftovers(directory)
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(leftovers, timeout=5)
    assert not leftovers, f"processes left behind: {[p.pid for p in leftovers]}"


@pytest.fixture
def make_runtime(runtime_dir: Path) -> Iterator[Callable[..., LocalRuntime]]:
    runtimes: list[LocalRuntime] = []

    def make(**kwargs: Any) -> LocalRuntime:
        kwargs.setdefault("probe_interval", 0.05)
        kwargs.setdefault("grace_period", 2.0)
        kwargs.setdefault("liveness_interval", 0.2)
        kwargs.setdefault("backoff", Backoff(initial=0.2, cap=2.0, reset_after=5.0))
        runtime = LocalRuntime(runtime_dir, **kwargs)
        runtimes.append(runtime)
        return runtime

    yield make
    for runtime in runtimes:
        runtime.close(stop_workloads=True)


@pytest.fixture
def runtime(make_runtime: Callable[..., LocalRuntime]) -> LocalRuntime:
    return make_runtime(accelerators={})
