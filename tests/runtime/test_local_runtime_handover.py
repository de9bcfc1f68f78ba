"""GPU hand-over: with NVML, a device whose last holder still shows a compute process on it stays out of
the pool until the process is gone (or the bounded wait ends). NVML is a fake passed in here."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from local_runtime_support import wait_for

from pilothouse.runtime.local import LocalRuntime
from pilothouse.runtime.local.gpus import DeviceAllocator
from pilothouse.runtime.local.handover import DeviceHandover
from pilothouse.runtime.protocol import JobRun

GPU = "nvidia.com/gpu"
UID = "uid-train"


@dataclass
class FakeProcess:
    pid: int


@dataclass
class FakeNvml:
    """What ``nvmlDeviceGetComputeRunningProcesses`` answers, per device index."""

    processes: dict[int, list[int]] = field(default_factory=dict)
    broken: bool = False
    calls: int = 0

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return index

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> Sequence[Any]:
        self.calls += 1
        if self.broken:
            raise RuntimeError("NVML: GPU is lost")
        return [FakeProcess(pid) for pid in self.processes.get(handle, [])]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def marked_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process carrying a holder's marker in its environment (an escaped descendant)."""
    env = {**os.environ, "MARK": "holder-a"}
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    wait_for(lambda: _environ_has_mark(proc.pid), what="the marked process to start")
    yield proc
    proc.kill()
    proc.wait()


def _environ_has_mark(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).environ().get("MARK") == "holder-a"
    except psutil.Error:
        return False


def setup(nvml: FakeNvml, timeout: float = 10.0) -> tuple[DeviceAllocator, DeviceHandover, Clock]:
    allocator = DeviceAllocator({GPU: 2})
    clock = Clock()
    return allocator, DeviceHandover(allocator, nvml, timeout, clock=clock), clock


def test_lingering_process_keeps_its_device_until_it_goes() -> None:
    nvml = FakeNvml({0: [4242]})
    allocator, handover, _ = setup(nvml)
    assert allocator.allocate("a", {GPU: 2}) == {GPU: ["0", "1"]}
    assert not handover.release("a", pids=[4242])
    assert handover.is_pending("a")
    assert allocator.capacity().free == {GPU: 1}  # device 1 was clean: released at once
    assert set(allocator.free_since()[GPU]) == {"1"}
    assert allocator.allocate("b", {GPU: 2}) is None
    assert handover.poll() == []
    nvml.processes[0] = []
    assert handover.poll() == ["a"]
    assert allocator.capacity().free == {GPU: 2}


def test_a_process_that_is_gone_but_still_listed_blocks_too() -> None:
    done = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert done.returncode == 0
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    nvml = FakeNvml({1: [proc.pid]})  # a context that outlived its process
    allocator, handover, _ = setup(nvml)
    allocator.allocate("a", {GPU: 2})
    assert not handover.release("a")
    assert allocator.capacity().free == {GPU: 1}


def test_processes_of_others_do_not_block(marked_process: subprocess.Popen[bytes]) -> None:
    nvml = FakeNvml({0: [os.getpid()], 1: [marked_process.pid]})
    allocator, handover, _ = setup(nvml)
    allocator.allocate("a", {GPU: 2})
    # This test process is alive and carries no marker: someone else's. The marked one is the holder's.
    assert not handover.release("a", pids=[], marker=("MARK", "holder-a"))
    assert handover.pending_devices() == {"a": {(GPU, "1")}}
    marked_process.kill()
    marked_process.wait()
    assert handover.poll() == []  # dead but still listed: its context has not been torn down yet
    nvml.processes[1] = []
    assert handover.poll() == ["a"]


def test_bounded_wait_then_released_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    nvml = FakeNvml({0: [4242]})
    allocator, handover, clock = setup(nvml, timeout=10.0)
    allocator.allocate("a", {GPU: 1})
    handover.release("a", pids=[4242])
    clock.now += 9.9
    assert handover.poll() == []
    clock.now += 0.2
    with caplog.at_level(logging.WARNING):
        assert handover.poll() == ["a"]
    assert "nvidia.com/gpu 0" in caplog.text
    assert "4242" in caplog.text
    assert allocator.capacity().free == {GPU: 2}


def test_nvml_errors_and_declared_devices_fall_back_to_the_tree_check() -> None:
    nvml = FakeNvml({0: [4242]}, broken=True)
    allocator, handover, _ = setup(nvml)
    allocator.allocate("a", {GPU: 1})
    assert handover.release("a", pids=[4242])
    other = DeviceAllocator({"example.com/fpga": 1})
    no_nvml = DeviceHandover(other, FakeNvml({0: [4242]}))
    other.allocate("a", {"example.com/fpga": 1})
    assert no_nvml.release("a", pids=[4242])  # NVML knows nothing of other resources


def test_job_reports_its_end_only_after_nvml_lets_go(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun]
) -> None:
    nvml = FakeNvml()
    runtime = make_runtime(accelerators={GPU: 2}, nvml=nvml)
    runtime.start_job(job("train", 1, "all=sleep:0.3", gpus=2))
    state = runtime.observe_job(UID)
    assert state is not None
    pid = state.workers[0].pid
    assert pid is not None
    nvml.processes[0] = [pid]  # the worker's CUDA context lingers on GPU 0 after it exits
    wait_for(lambda: runtime.capacity().free == {GPU: 1}, what="GPU 1 back once the worker is gone")
    time.sleep(0.3)
    held = runtime.observe_job(UID)
    assert held is not None
    assert held.phase == "Running"  # not Succeeded while a device is still being handed over
    assert held.workers[0].exit_code == 0
    assert set(runtime.free_devices_since()[GPU]) == {"1"}
    nvml.processes[0] = []
    done = wait_for(lambda: (s := runtime.observe_job(UID)) is not None and s.phase == "Succeeded" and s)
    assert done.exit_code == 0
    assert runtime.capacity().free == {GPU: 2}
