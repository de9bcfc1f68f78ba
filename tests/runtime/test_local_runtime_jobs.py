"""Job gangs: the torch.distributed environment, success, failure of one worker, deadlines, stopping with a
grace period, whole-tree cleanup, all-or-nothing devices and attempts."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from local_runtime_support import alive, wait_for

from pilothouse.runtime.local import LocalRuntime
from pilothouse.runtime.local.jobs import JobStillRunning
from pilothouse.runtime.protocol import InsufficientResources, JobRun, JobRunState, JobRuntime, Runtime

UID = "uid-train"
GPU = "nvidia.com/gpu"


def finished(runtime: LocalRuntime, uid: str = UID) -> JobRunState | None:
    state = runtime.observe_job(uid)
    return state if state is not None and state.phase in ("Succeeded", "Failed", "Stopped") else None


def logs(runtime: LocalRuntime, uid: str = UID) -> dict[str, str]:
    return {name: path.read_text() if path.exists() else "" for name, path in runtime.job_log_files(uid)}


def env_lines(text: str) -> list[dict[str, str]]:
    return [
        dict(kv.split("=", 1) for kv in line.split()[1:])
        for line in text.splitlines()
        if line.startswith("env ")
    ]


def test_gang_gets_distinct_gpus_ranks_and_one_master_port(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun], tmp_path: Path
) -> None:
    runtime = make_runtime(accelerators={GPU: 4})
    jobs: JobRuntime = runtime  # one object, both contracts
    replicas: Runtime = runtime
    assert jobs is replicas
    capacity = runtime.capacity()
    assert capacity[GPU] == 4
    assert capacity["cpu"] == psutil.cpu_count(logical=True) * 1000
    assert capacity["memory"] == psutil.virtual_memory().total
    changes: list[str] = []
    runtime.on_change(changes.append)

    run = job("train", 2, "all=exit:0", gpus=1, env={"GREETING": "hi"}, working_dir=str(tmp_path))
    runtime.start_job(run)
    assert runtime.job_owners() == {UID}
    state = wait_for(lambda: finished(runtime), what="the gang to finish")
    assert (state.phase, state.reason, state.exit_code) == ("Succeeded", "Completed", 0)
    assert [w.exit_code for w in state.workers] == [0, 0]
    assert sorted(w.devices for w in state.workers) == [("0",), ("1",)]
    assert state.started_at is not None and state.finished_at is not None
    assert state.started_at <= state.finished_at

    texts = logs(runtime)
    assert list(texts) == ["worker-0", "worker-1"]
    envs = {name: env_lines(text)[0] for name, text in texts.items()}
    assert [envs[f"worker-{i}"]["RANK"] for i in range(2)] == ["0", "1"]
    assert [envs[f"worker-{i}"]["LOCAL_RANK"] for i in range(2)] == ["0", "1"]
    assert {e["WORLD_SIZE"] for e in envs.values()} == {"2"}
    assert {e["MASTER_ADDR"] for e in envs.values()} == {"127.0.0.1"}
    assert len({e["MASTER_PORT"] for e in envs.values()}) == 1
    cudas = [envs[f"worker-{w.index}"]["CUDA_VISIBLE_DEVICES"] for w in state.workers]
    assert cudas == [w.devices[0] for w in state.workers]
    assert len(set(cudas)) == 2
    assert {
        (e["PILOTHOUSE_JOB_NAME"], e["PILOTHOUSE_JOB_ATTEMPT"], e["GREETING"]) for e in envs.values()
    } == {("train", "1", "hi")}
    assert {e["cwd"] for e in envs.values()} == {str(tmp_path)}
    assert all(text.startswith("--- attempt 1 ---\n") for text in texts.values())
    assert runtime.capacity().free == {GPU: 4}
    wait_for(lambda: UID in changes, what="on_change")


def test_failing_worker_stops_the_rest_of_the_gang(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun]
) -> None:
    runtime = make_runtime(accelerators={GPU: 4})
    runtime.start_job(job("train", 2, "all=sleep:60", "1=sleep:0.3+exit:3", gpus=1))
    running = runtime.observe_job(UID)
    assert running is not None
    assert running.phase == "Running"
    sibling = running.workers[0].pid
    assert sibling is not None
    state = wait_for(lambda: finished(runtime), what="the gang to fail")
    assert not alive(sibling)
    assert (state.phase, state.reason, state.exit_code) == ("Failed", "Error", 3)
    assert state.message == "worker 1 exited with code 3"
    assert [w.exit_code for w in state.workers] == [-15, 3]  # the sibling was SIGTERMed
    assert runtime.capacity().free == {GPU: 4}


def test_deadline_ends_the_gang(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun]
) -> None:
    runtime = make_runtime()
    runtime.start_job(job("train", 1, "all=grandchildren+sleep:60", deadline=1))
    [(_, log_path)] = runtime.job_log_files(UID)
    match = wait_for(
        lambda: re.search(r"grandchildren=(\d+),(\d+)", log_path.read_text()), what="grandchildren"
    )
    state = wait_for(lambda: finished(runtime), what="the deadline")
    assert (state.phase, state.reason, state.exit_code) == ("Failed", "DeadlineExceeded", None)
    assert "active deadline of 1s" in state.message
    assert state.finished_at is not None and state.started_at is not None
    assert state.finished_at - state.started_at >= 1.0
    pids = [state.workers[0].pid, int(match.group(1)), int(match.group(2))]
    assert not any(alive(pid) for pid in pids if pid is not None)


def test_grandchildren_are_gone_when_the_job_succeeds(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun]
) -> None:
    runtime = make_runtime()
    runtime.start_job(job("train", 1, "all=grandchildren+exit:0"))
    state = wait_for(lambda: finished(runtime), what="the job to finish")
    assert state.phase == "Succeeded"
    match = re.search(r"grandchildren=(\d+),(\d+)", logs(runtime)["worker-0"])
    assert match is not None
    assert not alive(int(match.group(1)))  # in the worker's process group
    assert not alive(int(match.group(2)))  # escaped with setsid, found by its environment


def test_stop_job_sigterm_then_sigkill_after_grace(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun]
) -> None:
    runtime = make_runtime()
    runtime.start_job(job("train", 2, "0=trap+sleep:60", "1=ignore+sleep:60"))
    wait_for(
        lambda: len(texts := logs(runtime)) == 2 and all("ready" in t for t in texts.values()),
        what="both workers ready",
    )
    grace = 1.0
    started = time.monotonic()
    runtime.stop_job(UID, grace)
    assert time.monotonic() - started < 0.5  # asynchronous
    stopping = runtime.observe_job(UID)
    assert stopping is not None
    assert stopping.phase == "Terminating"
    state = wait_for(lambda: finished(runtime), what="the stop")
    elapsed = time.monotonic() - started
    assert (state.phase, state.reason, state.exit_code) == ("Stopped", "Stopped", None)
    assert [w.exit_code for w in state.workers] == [0, -9]  # trapped SIGTERM / SIGKILLed after the grace
    assert elapsed >= grace
    assert "got SIGTERM" in logs(runtime)["worker-0"]
    assert not any(alive(w.pid) for w in state.workers if w.pid is not None)
    runtime.stop_job(UID, grace)  # finished: nothing changes
    assert runtime.observe_job(UID) == state
    runtime.stop_job("uid-never-existed", grace)


def test_all_or_nothing_devices(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun], runtime_dir: Path
) -> None:
    runtime = make_runtime(accelerators={GPU: 4})
    with pytest.raises(
        InsufficientResources,
        match=r"3 worker\(s\) x 2 nvidia\.com/gpu: needs 6 nvidia\.com/gpu, 4 free of 4",
    ):
        runtime.start_job(job("train", 3, gpus=2))
    assert runtime.observe_job(UID) is None
    assert runtime.job_owners() == set()
    assert runtime.job_log_files(UID) == []
    assert not (runtime_dir / "logs" / "jobs" / UID).exists()
    assert runtime.capacity().free == {GPU: 4}
    with pytest.raises(InsufficientResources, match=r"amd\.com/gpu"):
        runtime.start_job(
            JobRun(
                owner=job().owner,
                attempt=1,
                workers=1,
                command=["true"],
                resources=job(gpus=1).resources.model_copy(update={"accelerators": {"amd.com/gpu": 1}}),
            )
        )


def test_gpus_are_handed_over_only_after_the_last_process_is_gone(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun]
) -> None:
    runtime = make_runtime(accelerators={GPU: 2})
    runtime.start_job(job("a", 1, "all=sleep:0.5", gpus=2))
    a = runtime.observe_job("uid-a")
    assert a is not None
    assert a.workers[0].devices == ("0", "1")
    a_pid = a.workers[0].pid
    assert a_pid is not None

    def start_b() -> bool:
        try:
            runtime.start_job(job("b", 1, "all=exit:0", gpus=2))
        except InsufficientResources:
            return False
        return True

    wait_for(start_b, interval=0.01, what="b to get the GPUs")
    assert not alive(a_pid)  # the devices came back only once a's process was gone
    b = runtime.observe_job("uid-b")
    assert b is not None
    a = runtime.observe_job("uid-a")
    assert a is not None
    assert a.phase == "Succeeded"
    assert b.workers[0].devices == ("0", "1")
    assert a.finished_at is not None and b.started_at is not None
    assert b.started_at >= a.finished_at
    b_pid = b.workers[0].pid
    assert b_pid is not None
    samples = runtime.handover_latencies()
    assert [(s.resource, s.device) for s in samples] == [(GPU, "0"), (GPU, "1")]
    for sample in samples:
        assert 0 <= sample.seconds < 5
        assert a.finished_at - 1 <= sample.released_at <= sample.started_at
    summary = runtime.handover_summary()
    assert summary.count == 2
    assert summary.max_seconds == max(s.seconds for s in samples)
    wait_for(lambda: finished(runtime, "uid-b"), what="b to finish")
    free = runtime.free_devices_since()
    assert set(free[GPU]) == {"0", "1"}
    assert all(since >= samples[0].started_at for since in free[GPU].values())


def test_replicas_and_jobs_share_one_device_pool(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun], workload: Callable[..., object]
) -> None:
    from pilothouse.runtime.protocol import WorkloadSpec

    runtime = make_runtime(accelerators={GPU: 4})
    spec = workload("server", gpus=1)
    assert isinstance(spec, WorkloadSpec)
    runtime.ensure(spec)
    [replica] = runtime.observe("uid-server")
    assert replica.devices == ("0",)
    with pytest.raises(InsufficientResources, match=r"needs 4 nvidia\.com/gpu, 3 free of 4"):
        runtime.start_job(job("train", 1, gpus=4))
    runtime.start_job(job("train", 3, "all=sleep:60", gpus=1))
    state = runtime.observe_job(UID)
    assert state is not None
    assert sorted(w.devices for w in state.workers) == [("1",), ("2",), ("3",)]
    other = workload("other", gpus=1)
    assert isinstance(other, WorkloadSpec)
    runtime.ensure(other)
    [waiting] = runtime.observe("uid-other")
    assert (waiting.phase, waiting.reason) == ("Pending", "InsufficientAccelerators")
    runtime.stop_job(UID, 1.0)
    wait_for(lambda: finished(runtime), what="the stop")
    wait_for(lambda: [s for s in runtime.observe("uid-other") if s.devices], what="the replica to get a GPU")


def test_attempts_idempotence_and_forget(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun], runtime_dir: Path
) -> None:
    runtime = make_runtime()
    runtime.start_job(job("train", 1, "all=sleep:60"))
    first = runtime.observe_job(UID)
    assert first is not None
    runtime.start_job(job("train", 1, "all=sleep:60"))  # same attempt: nothing happens
    again = runtime.observe_job(UID)
    assert again is not None
    assert [w.pid for w in again.workers] == [w.pid for w in first.workers]
    with pytest.raises(JobStillRunning):
        runtime.start_job(job("train", 1, "all=sleep:60", attempt=2))
    with pytest.raises(JobStillRunning):
        runtime.forget_job(UID)
    record = json.loads((runtime_dir / "jobs" / f"{UID}.json").read_text())
    assert (record["attempt"], record["phase"]) == (1, "Running")
    assert [w["pid"] for w in record["workers"]] == [first.workers[0].pid]

    wait_for(lambda: "ready" in logs(runtime)["worker-0"], what="attempt 1 to be up")
    runtime.stop_job(UID, 0.5)
    wait_for(lambda: finished(runtime), what="the stop")
    runtime.start_job(job("train", 1, "all=exit:0", attempt=2))
    second = wait_for(lambda: finished(runtime), what="attempt 2")
    assert (second.attempt, second.phase) == (2, "Succeeded")
    text = logs(runtime)["worker-0"]
    assert text.index("--- attempt 1 ---") < text.index("--- attempt 2 ---")
    assert [e["PILOTHOUSE_JOB_ATTEMPT"] for e in env_lines(text)] == ["1", "2"]

    runtime.forget_job(UID)
    runtime.forget_job(UID)  # idempotent
    assert runtime.observe_job(UID) is None
    assert runtime.job_owners() == set()
    assert not (runtime_dir / "jobs" / f"{UID}.json").exists()
    assert [name for name, _ in runtime.job_log_files(UID)] == ["worker-0"]  # the log stays readable


def test_a_command_that_cannot_run_fails_the_attempt(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun]
) -> None:
    runtime = make_runtime(accelerators={GPU: 2})
    runtime.start_job(job("train", 2, gpus=1, command=["/nonexistent/train.sh"]))
    state = wait_for(lambda: finished(runtime), what="the failed start")
    assert (state.phase, state.reason) == ("Failed", "StartFailed")
    assert "/nonexistent/train.sh" in state.message
    assert "cannot run" in logs(runtime)["worker-0"]
    assert runtime.capacity().free == {GPU: 2}
    runtime.forget_job(UID)
    runtime.start_job(job("train", 1, "all=exit:0", working_dir="/nonexistent/dir"))
    state = wait_for(lambda: finished(runtime), what="the failed start")
    assert (state.phase, state.reason) == ("Failed", "StartFailed")
    assert "working directory '/nonexistent/dir' does not exist" in state.message


def test_a_worker_exit_is_noticed_at_once_not_at_the_next_monitor_tick(
    make_runtime: Callable[..., LocalRuntime], job: Callable[..., JobRun]
) -> None:
    # A 5 s tick: before, the exit was seen up to 5 s late and the GPU stayed with a finished job.
    runtime = make_runtime(accelerators={GPU: 1}, probe_interval=5.0)
    time.sleep(0.2)  # let the monitor's first tick pass, so the next one is 5 s away
    runtime.start_job(job("train", 1, "all=exit:0", gpus=1))
    started = time.monotonic()
    state = wait_for(lambda: finished(runtime), timeout=4.0, what="the finished gang noticed")
    assert state.phase == "Succeeded"
    assert time.monotonic() - started < 2.0
