"""A restarted control plane adopts the replicas the previous one left running, and never duplicates them."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import psutil
from local_runtime_support import alive, wait_for

from pilothouse.runtime.local import LocalRuntime
from pilothouse.runtime.protocol import WorkloadSpec

UID = "uid-demo"


def test_new_runtime_adopts_running_replica(
    make_runtime: Callable[..., LocalRuntime], workload: Callable[..., WorkloadSpec], runtime_dir: Path
) -> None:
    a = make_runtime(accelerators={"nvidia.com/gpu": 2})
    a.ensure(workload(gpus=1))
    [state] = wait_for(lambda: [s for s in a.observe(UID) if s.ready], what="Ready under runtime A")
    a.close(stop_workloads=False)
    assert state.pid is not None
    assert alive(state.pid)
    [record_path] = (runtime_dir / "replicas").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["pid"] == state.pid
    assert record["create_time"] == psutil.Process(state.pid).create_time()
    assert record["owner"]["uid"] == UID
    assert record["devices"] == {"nvidia.com/gpu": list(state.devices)}
    assert oct(record_path.stat().st_mode & 0o777) == oct(0o600)

    b = make_runtime(accelerators={"nvidia.com/gpu": 2})
    assert b.owners() == {UID}
    [adopted] = wait_for(lambda: [s for s in b.observe(UID) if s.ready], what="Ready under runtime B")
    assert (adopted.id, adopted.pid, adopted.devices, adopted.url) == (
        state.id,
        state.pid,
        state.devices,
        state.url,
    )
    assert b.capacity().free == {"nvidia.com/gpu": 1}  # the adopted replica keeps its GPU

    b.ensure(workload(gpus=1, replicas=1))
    assert [s.pid for s in b.observe(UID)] == [state.pid]  # no duplicate

    b.remove(UID)
    assert not alive(state.pid)
    assert b.observe(UID) == []
    assert not list((runtime_dir / "replicas").glob("*.json"))


def test_adopted_replica_that_dies_is_restarted(
    make_runtime: Callable[..., LocalRuntime], workload: Callable[..., WorkloadSpec]
) -> None:
    a = make_runtime()
    a.ensure(workload())
    [state] = wait_for(lambda: [s for s in a.observe(UID) if s.ready], what="Ready under runtime A")
    a.close(stop_workloads=False)
    b = make_runtime()
    wait_for(lambda: [s for s in b.observe(UID) if s.ready], what="adopted")
    assert state.pid is not None
    os.kill(state.pid, signal.SIGKILL)
    [again] = wait_for(
        lambda: [s for s in b.observe(UID) if s.ready and s.pid != state.pid], what="restarted under B"
    )
    assert again.id == state.id
    assert again.restarts == 1
    assert again.last_exit_code is None  # not our child: its exit status is unknowable


def test_dead_records_are_dropped_and_replaced(
    make_runtime: Callable[..., LocalRuntime], workload: Callable[..., WorkloadSpec], runtime_dir: Path
) -> None:
    a = make_runtime(accelerators={"nvidia.com/gpu": 1})
    a.ensure(workload(gpus=1, env={"SPAWN_GRANDCHILDREN": "1"}))
    [state] = wait_for(lambda: [s for s in a.observe(UID) if s.ready], what="Ready under runtime A")
    [(_, log_path)] = a.log_files(UID)
    wait_for(lambda: "grandchildren=" in log_path.read_text(), what="grandchildren")
    in_group = int(log_path.read_text().split("grandchildren=")[1].split(",")[0])
    a.close(stop_workloads=False)
    assert state.pid is not None
    os.kill(state.pid, signal.SIGKILL)  # the replica died while no control plane was watching
    wait_for(lambda: not alive(state.pid), what="the replica to die")
    assert alive(in_group)

    b = make_runtime(accelerators={"nvidia.com/gpu": 1})
    assert b.observe(UID) == []
    assert not alive(in_group)  # what was left of its process group is gone
    assert b.capacity().free == {"nvidia.com/gpu": 1}
    b.ensure(workload(gpus=1))
    [fresh] = wait_for(lambda: [s for s in b.observe(UID) if s.ready], what="a fresh replica")
    assert fresh.id != state.id
    assert fresh.devices == ("0",)


def test_record_of_a_reused_pid_is_not_adopted(
    make_runtime: Callable[..., LocalRuntime], workload: Callable[..., WorkloadSpec], runtime_dir: Path
) -> None:
    a = make_runtime()
    a.ensure(workload())
    [state] = wait_for(lambda: [s for s in a.observe(UID) if s.ready], what="Ready under runtime A")
    a.close(stop_workloads=False)
    [record_path] = (runtime_dir / "replicas").glob("*.json")
    record = json.loads(record_path.read_text())
    record["pid"] = os.getpid()  # a live process that is not the replica (same pid, other create time)
    record_path.write_text(json.dumps(record))
    b = make_runtime()
    assert b.observe(UID) == []
    assert alive(os.getpid())
    assert state.pid is not None
    os.kill(state.pid, signal.SIGKILL)  # the real one is no longer known to anyone: clean it up here
    wait_for(lambda: not alive(state.pid), what="cleanup")
