"""Replicas start, become Ready, scale, crash, restart with backoff and stop with their process trees."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
from local_runtime_support import alive, wait_for

from pilothouse.runtime.local import LocalRuntime
from pilothouse.runtime.protocol import ReplicaState, WorkloadSpec

UID = "uid-demo"


def ready(runtime: LocalRuntime, uid: str = UID, count: int = 1) -> list[ReplicaState]:
    states = runtime.observe(uid)
    return states if len(states) == count and all(s.ready for s in states) else []


def log_text(runtime: LocalRuntime, uid: str = UID) -> str:
    return "".join(path.read_text() for _, path in runtime.log_files(uid) if path.exists())


def test_start_becomes_ready_with_logs_and_cpu_only(
    runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]
) -> None:
    changes: list[str] = []
    monitor_threads: set[str] = set()

    def record(uid: str) -> None:
        changes.append(uid)
        monitor_threads.add(threading.current_thread().name)

    runtime.on_change(record)
    runtime.ensure(workload(env={"GREETING": "hi"}))
    [state] = wait_for(lambda: ready(runtime), what="the replica to be Ready")
    assert re.fullmatch(r"demo-1-[a-z0-9]{5}", state.id)
    assert state.owner_uid == UID
    assert state.revision == 1
    assert state.url is not None
    assert state.url.startswith("http://127.0.0.1:")
    assert state.pid is not None
    assert alive(state.pid)
    assert state.restarts == 0
    assert state.devices == ()
    assert runtime.owners() == {UID}
    proc = psutil.Process(state.pid)
    assert os.getpgid(state.pid) == state.pid  # its own process group
    environ = proc.environ()
    assert environ["CUDA_VISIBLE_DEVICES"] == ""  # a CPU replica never sees a GPU
    assert environ["PILOTHOUSE_REPLICA_ID"] == state.id
    assert environ["GREETING"] == "hi"
    assert environ["HOST"] == "127.0.0.1"
    assert state.url.endswith(":" + environ["PORT"])
    [(replica_id, log_path)] = runtime.log_files(UID)
    assert replica_id == state.id
    assert log_path == runtime.runtime_dir / "logs" / UID / f"{state.id}.log"
    text = wait_for(lambda: log_text(runtime), what="output in the log")
    assert f"pid={state.pid} cuda=''" in text
    wait_for(lambda: UID in changes, what="on_change to be called")
    assert monitor_threads == {"pilothouse-runtime"}


def test_ensure_is_idempotent(runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]) -> None:
    runtime.ensure(workload(replicas=2))
    first = wait_for(lambda: ready(runtime, count=2), what="two Ready replicas")
    runtime.ensure(workload(replicas=2))
    runtime.ensure(workload(replicas=2))
    assert [s.pid for s in runtime.observe(UID)] == [s.pid for s in first]
    assert first == sorted(first, key=lambda s: s.id)


def test_scale_two_one_zero_stops_processes(
    runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]
) -> None:
    runtime.ensure(workload(replicas=2))
    states = wait_for(lambda: ready(runtime, count=2), what="two Ready replicas")
    pids = {s.pid for s in states}
    assert None not in pids
    assert len(pids) == 2

    runtime.ensure(workload(replicas=1))
    [kept] = runtime.observe(UID)
    [stopped] = [pid for pid in pids if pid != kept.pid]
    assert stopped is not None
    assert not alive(stopped)
    assert kept.pid is not None
    assert alive(kept.pid)

    runtime.ensure(workload(replicas=0))
    assert runtime.observe(UID) == []
    assert not alive(kept.pid)
    assert runtime.owners() == set()
    assert not list((runtime.runtime_dir / "replicas").glob("*.json"))


def test_scale_down_prefers_replicas_that_are_not_ready(
    runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]
) -> None:
    runtime.ensure(workload(replicas=1))
    [good] = wait_for(lambda: ready(runtime), what="a Ready replica")
    runtime.ensure(workload(replicas=2))  # one more, still Starting when we scale back down
    [new] = [s for s in runtime.observe(UID) if s.id != good.id]
    runtime.ensure(workload(replicas=1))
    assert [s.id for s in runtime.observe(UID)] == [good.id]
    assert new.pid is None or not alive(new.pid)


def test_remove_kills_children_and_grandchildren(
    runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]
) -> None:
    runtime.ensure(workload(env={"SPAWN_GRANDCHILDREN": "1"}))
    [state] = wait_for(lambda: ready(runtime), what="a Ready replica")
    match = wait_for(lambda: re.search(r"grandchildren=(\d+),(\d+)", log_text(runtime)), what="grandchildren")
    in_group, escaped = int(match.group(1)), int(match.group(2))
    assert alive(in_group)
    assert alive(escaped)
    assert os.getpgid(escaped) != state.pid  # left the replica's process group

    runtime.remove(UID)
    assert state.pid is not None
    assert not alive(state.pid)
    assert not alive(in_group)
    assert not alive(escaped)
    assert runtime.observe(UID) == []
    runtime.remove(UID)  # already gone: still a success
    runtime.remove("uid-never-existed")


def test_remove_one_revision_only(runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]) -> None:
    runtime.ensure(workload(revision=1))
    runtime.ensure(workload(revision=2))
    wait_for(lambda: ready(runtime, count=2), what="both revisions Ready")
    runtime.remove(UID, revision=1)
    [left] = runtime.observe(UID)
    assert left.revision == 2


def test_sigkilled_ready_replica_comes_back(
    runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]
) -> None:
    runtime.ensure(workload())
    [before] = wait_for(lambda: ready(runtime), what="a Ready replica")
    assert before.pid is not None
    os.kill(before.pid, signal.SIGKILL)
    [after] = wait_for(
        lambda: [s for s in runtime.observe(UID) if s.ready and s.pid != before.pid],
        what="the replica to be restarted and Ready",
    )
    assert after.id == before.id
    assert after.restarts == 1
    assert after.last_exit_code == -signal.SIGKILL
    assert after.pid is not None
    assert alive(after.pid)
    assert not alive(before.pid)


def test_failing_replica_reports_reason_and_backs_off(
    runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]
) -> None:
    runtime.ensure(workload(env={"FAIL_WITH": "ModelLoadFailed: file not found: /x/model.joblib"}))
    [failed] = wait_for(
        lambda: [s for s in runtime.observe(UID) if s.phase == "Failed"], what="the replica to fail"
    )
    first_failure = time.monotonic()
    assert failed.reason == "ModelLoadFailed"
    assert "file not found: /x/model.joblib" in failed.message
    assert "restarting in 0.2s" in failed.message
    assert failed.last_exit_code == 3
    assert failed.url is None
    assert failed.pid is None
    # The fixture's backoff is 0.2 s doubling (cap 2 s): the third restart waits 0.2 + 0.4 + 0.8 s at least.
    wait_for(lambda: runtime.observe(UID)[0].restarts >= 3, what="three restarts")
    assert time.monotonic() - first_failure >= 1.4 - 0.1
    [state] = wait_for(
        lambda: [s for s in runtime.observe(UID) if s.phase == "Failed" and s.restarts >= 3],
        what="failed again",
    )
    assert state.reason == "ModelLoadFailed"
    assert "restarting in" in state.message
    assert log_text(runtime).count("failing on purpose") >= 3  # every attempt's output stays in the log


def test_crash_without_termination_log_is_error_then_crash_loop(
    runtime: LocalRuntime, server_script: Path, workload: Callable[..., WorkloadSpec]
) -> None:
    from dataclasses import replace

    from pilothouse.api.modelendpoint import ModelSource

    crashing = replace(workload(), model=ModelSource(command=["sh", "-c", "echo boom; exit 7"]))
    runtime.ensure(crashing)
    first = wait_for(
        lambda: [s for s in runtime.observe(UID) if s.phase == "Failed"], what="the first failure"
    )[0]
    assert first.reason == "Error"
    assert first.last_exit_code == 7
    assert "exited with code 7" in first.message
    wait_for(
        lambda: [s for s in runtime.observe(UID) if s.reason == "CrashLoopBackOff"], what="CrashLoopBackOff"
    )


def test_missing_command_fails_to_start(runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]) -> None:
    from dataclasses import replace

    from pilothouse.api.modelendpoint import ModelSource

    runtime.ensure(replace(workload(), model=ModelSource(command=["/nonexistent/pilothouse-server"])))
    [state] = runtime.observe(UID)
    assert state.phase == "Failed"
    assert state.reason == "StartFailed"
    assert "/nonexistent/pilothouse-server" in log_text(runtime)


def test_follow_logs_tails_and_ends_on_remove(
    runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]
) -> None:
    runtime.ensure(workload())
    [state] = wait_for(lambda: ready(runtime), what="a Ready replica")
    lines = runtime.follow_logs(UID)
    first = next(lines)
    assert first == f"pid={state.pid} cuda=''"
    with open(runtime.log_files(UID)[0][1], "a") as out:
        out.write("appended later\n")
    assert next(lines) == "appended later"
    runtime.remove(UID)
    assert list(lines) == []  # the generator ends once the replica is gone
    # a generator the caller abandons closes its files
    again = runtime.follow_logs(UID, state.id)
    assert next(again) == first
    again.close()


def test_crashed_replica_leaves_nothing_behind(
    runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]
) -> None:
    runtime.ensure(workload(env={"SPAWN_GRANDCHILDREN": "1"}))
    [state] = wait_for(lambda: ready(runtime), what="a Ready replica")
    match = wait_for(lambda: re.search(r"grandchildren=(\d+),(\d+)", log_text(runtime)), what="grandchildren")
    grandchildren = [int(match.group(1)), int(match.group(2))]
    assert state.pid is not None
    os.kill(state.pid, signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in grandchildren), what="the crashed tree to be cleaned up")


def test_concurrent_ensure_never_duplicates(
    runtime: LocalRuntime, workload: Callable[..., WorkloadSpec]
) -> None:
    barrier = threading.Barrier(4)

    def call() -> None:
        barrier.wait()
        runtime.ensure(workload(replicas=2))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(runtime.observe(UID)) == 2
    wait_for(lambda: ready(runtime, count=2), what="two Ready replicas")


def test_close_stops_everything(
    make_runtime: Callable[..., LocalRuntime], workload: Callable[..., WorkloadSpec]
) -> None:
    runtime = make_runtime()
    runtime.ensure(workload("a", replicas=2))
    runtime.ensure(workload("b"))
    wait_for(lambda: ready(runtime, "uid-a", 2) and ready(runtime, "uid-b"), what="all Ready")
    pids = [s.pid for uid in ("uid-a", "uid-b") for s in runtime.observe(uid)]
    runtime.close()
    assert not any(alive(pid) for pid in pids if pid is not None)
    assert runtime.owners() == set()
    assert not list((runtime.runtime_dir / "replicas").glob("*.json"))
    runtime.close()  # idempotent
