"""Accelerators are discovered or declared, and every replica gets its own devices."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from local_runtime_support import wait_for

from pilothouse.runtime.local import LocalRuntime
from pilothouse.runtime.local.gpus import DeviceAllocator, discover_nvidia_gpus
from pilothouse.runtime.protocol import WorkloadSpec


def cuda_of(runtime: LocalRuntime, uid: str, replica_id: str) -> str | None:
    [(_, path)] = runtime.log_files(uid, replica_id)
    match = re.search(r"cuda='([^']*)'", path.read_text()) if path.exists() else None
    return match.group(1) if match else None


def test_replicas_get_distinct_gpus_and_the_third_waits(
    make_runtime: Callable[..., LocalRuntime], workload: Callable[..., WorkloadSpec]
) -> None:
    runtime = make_runtime(accelerators={"nvidia.com/gpu": 2})
    assert runtime.capacity().total == {"nvidia.com/gpu": 2}
    runtime.ensure(workload("a", gpus=1))
    runtime.ensure(workload("b", gpus=1))
    [a] = wait_for(lambda: [s for s in runtime.observe("uid-a") if s.ready], what="a Ready")
    [b] = wait_for(lambda: [s for s in runtime.observe("uid-b") if s.ready], what="b Ready")
    assert {a.devices, b.devices} == {("0",), ("1",)}
    assert wait_for(lambda: cuda_of(runtime, "uid-a", a.id)) == a.devices[0]
    assert wait_for(lambda: cuda_of(runtime, "uid-b", b.id)) == b.devices[0]
    assert runtime.capacity().free == {"nvidia.com/gpu": 0}

    runtime.ensure(workload("c", gpus=1))
    [c] = runtime.observe("uid-c")
    assert c.phase == "Pending"
    assert c.reason == "InsufficientAccelerators"
    assert c.message == "needs 1 nvidia.com/gpu, 0 free of 2"
    assert c.pid is None

    runtime.remove("uid-a")
    [c] = wait_for(
        lambda: [s for s in runtime.observe("uid-c") if s.ready], what="c to start once a GPU frees"
    )
    assert c.devices == a.devices
    assert wait_for(lambda: cuda_of(runtime, "uid-c", c.id)) == a.devices[0]


def test_one_replica_with_two_gpus(
    make_runtime: Callable[..., LocalRuntime], workload: Callable[..., WorkloadSpec]
) -> None:
    runtime = make_runtime(accelerators={"nvidia.com/gpu": 4})
    runtime.ensure(workload("big", gpus=2, replicas=2))
    wait_for(lambda: len([s for s in runtime.observe("uid-big") if s.ready]) == 2, what="both Ready")
    states = runtime.observe("uid-big")
    devices = [d for s in states for d in s.devices]
    assert sorted(devices) == ["0", "1", "2", "3"]
    assert {cuda_of(runtime, "uid-big", s.id) for s in states} == {",".join(s.devices) for s in states}
    runtime.ensure(workload("big", gpus=2, replicas=3))
    pending = [s for s in runtime.observe("uid-big") if s.phase == "Pending"]
    assert [s.message for s in pending] == ["needs 2 nvidia.com/gpu, 0 free of 4"]


def test_allocator_is_exclusive_and_all_or_nothing() -> None:
    allocator = DeviceAllocator({"nvidia.com/gpu": 3})
    assert allocator.allocate("r1", {"nvidia.com/gpu": 2}) == {"nvidia.com/gpu": ["0", "1"]}
    assert allocator.allocate("r2", {"nvidia.com/gpu": 2}) is None
    assert allocator.shortage({"nvidia.com/gpu": 2}) == "needs 2 nvidia.com/gpu, 1 free of 3"
    assert allocator.allocate("r3", {}) == {}
    assert allocator.allocate("r4", {"amd.com/gpu": 1}) is None
    allocator.release("r1")
    assert allocator.allocate("r2", {"nvidia.com/gpu": 2}) == {"nvidia.com/gpu": ["0", "1"]}
    assert allocator.capacity().free == {"nvidia.com/gpu": 1}


def test_discovery_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = discover_nvidia_gpus()  # zero on a machine without NVIDIA drivers, the real ones otherwise
    assert all(g.memory_total_bytes > 0 and g.name for g in gpus)

    import pynvml

    def broken() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", broken)
    assert discover_nvidia_gpus() == []
    assert DeviceAllocator.from_declared_or_discovered(None).totals == {}
