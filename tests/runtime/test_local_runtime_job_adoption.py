"""A restarted control plane adopts running job gangs (same pids, same devices), and reports a gang whose
worker died unwatched as lost."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import psutil
from local_runtime_support import alive, wait_for

from pilothouse.runtime.local import LocalRuntime
from pilothouse.runtime.protocol import JobRun, JobRunState

UID = "uid-train"
GPU = "nvidia.com/gpu"


def finished(runtime: LocalRuntime) -> JobRunState | None:
    state = runtime.observe_job(UID)
    return state if state is not None and state.phase in ("Succeeded", "Failed", "Stopped") else None


def test_new_runtime_adopts_a_running_gang(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun], runtime_dir: Path
) -> None:
    a = make_runtime(accelerators={GPU: 2})
    a.start_job(job("train", 2, "all=sleep:60", gpus=1, deadline=600))
    before = a.observe_job(UID)
    assert before is not None
    a.close(stop_workloads=False)
    pids = [w.pid for w in before.workers]
    assert all(pid is not None and alive(pid) for pid in pids)
    record = json.loads((runtime_dir / "jobs" / f"{UID}.json").read_text())
    assert [w["pid"] for w in record["workers"]] == pids
    assert [w["create_time"] for w in record["workers"]] == [
        psutil.Process(p).create_time() for p in pids if p
    ]
    assert oct((runtime_dir / "jobs" / f"{UID}.json").stat().st_mode & 0o777) == oct(0o600)

    b = make_runtime(accelerators={GPU: 2})
    assert b.job_owners() == {UID}
    adopted = b.observe_job(UID)
    assert adopted is not None
    assert adopted.phase == "Running"
    assert [w.pid for w in adopted.workers] == pids
    assert [w.devices for w in adopted.workers] == [w.devices for w in before.workers]
    assert adopted.started_at == before.started_at  # the deadline keeps counting from the real start
    assert b.capacity().free == {GPU: 0}
    b.start_job(job("train", 2, "all=sleep:60", gpus=1, deadline=600))  # same attempt: no duplicate
    again = b.observe_job(UID)
    assert again is not None
    assert [w.pid for w in again.workers] == pids

    b.stop_job(UID, 1.0)
    state = wait_for(lambda: finished(b), what="the adopted gang to stop")
    assert (state.phase, state.reason) == ("Stopped", "Stopped")
    assert not any(alive(pid) for pid in pids if pid is not None)
    assert b.capacity().free == {GPU: 2}


def test_gang_whose_worker_died_unwatched_is_lost(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun]
) -> None:
    a = make_runtime(accelerators={GPU: 2})
    a.start_job(job("train", 2, "all=sleep:60", gpus=1))
    before = a.observe_job(UID)
    assert before is not None
    a.close(stop_workloads=False)
    dead, survivor = before.workers[0].pid, before.workers[1].pid
    assert dead is not None and survivor is not None
    os.kill(dead, signal.SIGKILL)
    wait_for(lambda: not alive(dead), what="worker 0 to die")

    b = make_runtime(accelerators={GPU: 2})
    state = wait_for(lambda: finished(b), what="the lost gang to end")
    assert (state.phase, state.reason, state.exit_code) == ("Failed", "Lost", None)
    assert "worker 0" in state.message
    assert not alive(survivor)  # the rest of the gang was stopped
    assert b.capacity().free == {GPU: 2}


def test_finished_attempt_is_still_reported_after_a_restart(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun]
) -> None:
    a = make_runtime()
    a.start_job(job("train", 1, "all=exit:4"))
    state = wait_for(lambda: finished(a), what="the failure")
    a.close(stop_workloads=False)
    b = make_runtime()
    assert b.observe_job(UID) == state
    b.forget_job(UID)
    assert b.observe_job(UID) is None
