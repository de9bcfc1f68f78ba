"""The job queue end to end through the controllers: real SQL store, real scheduler, fake job runtime.

The runtime is the only fake (injected), so these tests exercise the actual queue pass, the per-job
lifecycle and their interplay — admission, borrowing, reclaim by preemption, retries, cancellation —
in well under a second each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes import FakeRuntime
from pilothouse.api.job import Job
from pilothouse.api.team import Team
from pilothouse.controllers.job import JobReconciler, TeamReconciler
from pilothouse.controllers.manager import Manager
from pilothouse.controllers.queue import QueuePass
from pilothouse.controllers.queue_snapshot import job_id
from pilothouse.scheduling.policies import make_policy
from pilothouse.store.protocol import Conflict
from pilothouse.store.sql import SqlStore
from support import wait_for


def job(name: str, namespace: str = "default", gpus: int = 4, workers: int = 1, **spec: Any) -> Job:
    return Job.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "command": ["python", "train.py"],
                "workers": workers,
                "resources": {"accelerators": {"nvidia.com/gpu": gpus}},
                **spec,
            },
        }
    )


def team(name: str, gpus: int, cohort: str | None = "lab", borrowing: int | None = None) -> Team:
    quota: dict[str, Any] = {"nominal": gpus}
    if borrowing is not None:
        quota["borrowingLimit"] = borrowing
    return Team.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "Team",
            "metadata": {"name": name},
            "spec": {"cohort": cohort, "quotas": {"nvidia.com/gpu": quota}},
        }
    )


class Queue:
    def __init__(self, path: Path, gpus: int) -> None:
        self.store = SqlStore(path)
        self.runtime = FakeRuntime()
        self.runtime.gpus = gpus
        self.manager = Manager(self.store, [], resync_seconds=0.3)
        self.queue = QueuePass(self.store, self.runtime, self.runtime, make_policy("fair"))
        self.jobs = JobReconciler(self.store, self.runtime, self.queue, self.manager.enqueue)
        self.manager.register(self.jobs)
        self.manager.register(TeamReconciler(self.manager.enqueue))

        def on_change(uid: str) -> None:
            key = self.jobs.key_for_uid(uid)
            if key is not None:
                self.manager.enqueue(key)

        self.runtime.on_change(on_change)

    def get(self, name: str, namespace: str = "default") -> Job:
        obj = self.store.get("Job", namespace, name)
        assert isinstance(obj, Job)
        return obj

    def phase(self, name: str, namespace: str = "default") -> str:
        return self.get(name, namespace).status.phase

    def uid(self, name: str, namespace: str = "default") -> str:
        uid = self.get(name, namespace).metadata.uid
        assert uid is not None
        return uid


@pytest.fixture
def make_queue(tmp_path: Path) -> Iterator[Any]:
    queues: list[Queue] = []

    def make(gpus: int = 8) -> Queue:
        q = Queue(tmp_path / f"q{len(queues)}.db", gpus)
        queues.append(q)
        q.manager.start()
        return q

    yield make
    for q in queues:
        q.manager.stop()
        q.store.close()


def test_laptop_mode_shares_the_machine_and_starts_the_next_job_at_once(make_queue: Any) -> None:
    q = make_queue(gpus=8)
    for name in ("a", "b", "c"):
        q.store.create(job(name))
    wait_for(lambda: [q.phase(n) for n in "abc"].count("Running") == 2, what="two jobs running")
    waiting = next(n for n in "abc" if q.phase(n) == "Pending")
    wait_for(lambda: q.get(waiting).status.queuePosition is not None, what="waiting job's position written")
    status = q.get(waiting).status
    assert status.queuePosition == 1
    assert status.reason == "Queued" and status.message
    running = [n for n in "abc" if q.phase(n) == "Running"]
    devices = [q.get(n).status.devices[0] for n in running]
    assert len(set(",".join(devices).split(","))) == 8, "no GPU given to two jobs"

    q.runtime.finish_job(q.uid(running[0]), "Succeeded")
    wait_for(lambda: q.phase(running[0]) == "Succeeded", what="first job succeeded")
    wait_for(lambda: q.phase(waiting) == "Running", what="waiting job started as soon as GPUs freed")
    finished = q.get(running[0]).status
    assert finished.exitCode == 0 and finished.completionTime is not None
    reasons = {e.reason for e in q.store.list_events()}
    assert {"Admitted", "Started", "Completed"} <= reasons
    started = [e.message for e in q.store.list_events() if e.reason == "Started"]
    assert f"attempt 1: 1 worker(s), worker 0 on accelerator(s) {devices[0]}" in started


def test_borrowing_then_reclaim_restores_the_owners_share(make_queue: Any) -> None:
    q = make_queue(gpus=8)
    q.store.create(team("vision", 4))
    q.store.create(team("nlp", 4))
    q.store.create(job("v1", "vision"))
    q.store.create(job("v2", "vision"))  # borrows nlp's idle nominal quota
    wait_for(lambda: q.phase("v1", "vision") == q.phase("v2", "vision") == "Running", what="vision borrows")
    vision = q.store.get("Team", "", "vision")
    assert isinstance(vision, Team)
    wait_for(
        lambda: q.store.get("Team", "", "vision").status.resources.get("nvidia.com/gpu") is not None,
        what="team status written",
    )

    q.store.create(job("n1", "nlp"))  # nlp wants its quota back
    wait_for(
        lambda: "Preempting" in (q.phase("v1", "vision"), q.phase("v2", "vision")), what="reclaim preempts"
    )
    victim = "v1" if q.phase("v1", "vision") == "Preempting" else "v2"
    assert q.phase("n1", "nlp") == "Pending", "the owner waits until the borrowed GPUs are released"
    nominated = q.queue.nominated.get(job_id(q.get("n1", "nlp")))
    assert nominated == [job_id(q.get(victim, "vision"))], "the room being freed is held for n1"
    assert any(uid == q.uid(victim, "vision") for uid, _ in q.runtime.stop_requests)
    grace = next(g for uid, g in q.runtime.stop_requests if uid == q.uid(victim, "vision"))
    assert grace == 30.0, "the job's preemption grace period is passed to the runtime"

    q.runtime.finish_job(q.uid(victim, "vision"), "Stopped")
    wait_for(lambda: q.phase("n1", "nlp") == "Running", what="owner admitted after reclaim")
    assert q.get("n1", "nlp").status.message.startswith("the room preempted for it is free")
    assert not q.queue.nominated, "a nomination ends when its job starts"
    requeued = q.get(victim, "vision").status
    assert (requeued.phase, requeued.preemptions, requeued.failures) == ("Pending", 1, 0)
    assert any(e.reason == "Preempted" and e.involvedObject.name == victim for e in q.store.list_events())
    wait_for(
        lambda: q.store.get("Team", "", "nlp").status.resources["nvidia.com/gpu"].used == "4",
        what="nlp's usage in its Team status",
    )


def test_a_deleted_teams_running_jobs_keep_no_quota_and_are_reclaimed(make_queue: Any) -> None:
    # Before, the jobs of a Team deleted while they ran held their GPUs with no quota at all, and no team
    # could take them back: nlp waited on its own nominal quota until they ended.
    q = make_queue(gpus=8)
    q.store.create(team("vision", 4))
    q.store.create(team("nlp", 4))
    q.store.create(job("v1", "vision"))
    q.store.create(job("v2", "vision"))
    wait_for(lambda: q.phase("v1", "vision") == q.phase("v2", "vision") == "Running", what="vision borrows")
    q.store.delete("Team", "", "vision")
    q.store.create(job("n1", "nlp"))
    wait_for(
        lambda: "Preempting" in (q.phase("v1", "vision"), q.phase("v2", "vision")), what="reclaim preempts"
    )
    victim = "v1" if q.phase("v1", "vision") == "Preempting" else "v2"
    assert "vision has no Team, so its jobs hold no quota" in q.get(victim, "vision").status.message
    q.runtime.finish_job(q.uid(victim, "vision"), "Stopped")
    wait_for(lambda: q.phase("n1", "nlp") == "Running", what="nlp runs on its quota")
    wait_for(lambda: q.get(victim, "vision").status.reason == "NoTeam", what="the victim waits for a Team")
    other = "v2" if victim == "v1" else "v1"
    assert q.phase(other, "vision") == "Running", "nobody needed the other job's GPUs"


def test_failed_job_is_retried_then_fails(make_queue: Any) -> None:
    q = make_queue(gpus=4)
    q.store.create(job("flaky", maxRetries=1))
    wait_for(lambda: q.phase("flaky") == "Running", what="started")
    q.runtime.finish_job(q.uid("flaky"), "Failed", exit_code=3)
    wait_for(lambda: q.get("flaky").status.attempts == 2 and q.phase("flaky") == "Running", what="retried")
    q.runtime.finish_job(q.uid("flaky"), "Failed", exit_code=3)
    wait_for(lambda: q.phase("flaky") == "Failed", what="failed for good")
    status = q.get("flaky").status
    assert (status.failures, status.exitCode, status.reason) == (2, 3, "Error")


def test_job_without_a_team_waits_with_a_reason_once_teams_exist(make_queue: Any) -> None:
    q = make_queue(gpus=4)
    q.store.create(team("vision", 4))
    q.store.create(job("orphan", "research"))
    wait_for(lambda: q.get("orphan", "research").status.reason == "NoTeam", what="NoTeam reason")
    assert "create a Team" in q.get("orphan", "research").status.message


def test_deleting_a_running_job_stops_its_workers(make_queue: Any) -> None:
    q = make_queue(gpus=4)
    q.store.create(job("cancel-me"))
    wait_for(lambda: q.phase("cancel-me") == "Running", what="running")
    uid = q.uid("cancel-me")
    q.store.delete("Job", "default", "cancel-me")
    wait_for(lambda: any(u == uid for u, _ in q.runtime.stop_requests), what="stop requested")
    q.runtime.finish_job(uid, "Stopped")
    wait_for(lambda: uid not in q.runtime.job_owners(), what="attempt forgotten after stop")


def test_a_job_larger_than_the_machine_is_inadmissible_and_does_not_hold_up_the_queue(
    make_queue: Any,
) -> None:
    # Before: the 6-GPU gang became the queue's head and took a reservation that could never be met, so
    # every job behind it waited on 4 idle GPUs.
    q = make_queue(gpus=4)
    q.store.create(job("huge", gpus=1, workers=6))
    wait_for(lambda: q.get("huge").status.reason == "Inadmissible", what="huge marked inadmissible")
    q.store.create(job("small", gpus=1))
    wait_for(lambda: q.phase("small") == "Running", what="small job runs past the inadmissible one")
    status = q.get("huge").status
    assert status.phase == "Pending" and status.queuePosition is None
    assert (
        "needs 6 nvidia.com/gpu, more than the cluster has for jobs in all (4 nvidia.com/gpu)"
        in status.message
    )
    events = q.store.list_events(namespace="default")
    assert [(e.type, e.reason) for e in events if e.involvedObject.name == "huge"] == [
        ("Warning", "Inadmissible")
    ]


def test_a_job_over_its_teams_ceiling_waits_until_the_quota_is_raised(make_queue: Any) -> None:
    q = make_queue(gpus=8)
    q.store.create(team("solo", 2, cohort=None))
    q.store.create(job("three", "solo", gpus=3))
    wait_for(lambda: q.get("three", "solo").status.reason == "Inadmissible", what="inadmissible")
    assert "its quota is 2 nvidia.com/gpu and it is in no cohort" in q.get("three", "solo").status.message

    def raise_quota() -> bool:
        raised = q.store.get("Team", "", "solo")
        assert isinstance(raised, Team)
        raised.spec.quotas["nvidia.com/gpu"].nominal = "4"
        try:
            q.store.update(raised)
        except Conflict:  # the queue pass wrote the Team's status in between: read again
            return False
        return True

    wait_for(raise_quota, what="quota raised")
    wait_for(lambda: q.phase("three", "solo") == "Running", what="admitted once the quota allows it")


def test_a_worker_larger_than_every_node_is_inadmissible(make_queue: Any) -> None:
    q = make_queue(gpus=8)
    q.runtime.node_shapes = [{"nvidia.com/gpu": 4, "cpu": 32_000, "memory": 128 * 2**30}] * 2
    q.store.create(job("whole", gpus=8))
    q.store.create(job("split", gpus=4, workers=2))
    wait_for(lambda: q.phase("split") == "Running", what="the 2 x 4-GPU gang runs")
    wait_for(lambda: q.get("whole").status.reason == "Inadmissible", what="the 8-GPU worker is inadmissible")
    assert (
        "each worker needs 8 nvidia.com/gpu, more than any node has (largest: 4"
        in q.get("whole").status.message
    )


class LosesFirstWrite(SqlStore):
    """A store where the first status write of an object ``loses`` picks meets a concurrent change (as
    when a job's own reconciler, or metering, writes the same status at the same moment)."""

    def __init__(self, path: Path, loses: Callable[[Any], bool]) -> None:
        super().__init__(path)
        self.loses = loses
        self.lost = 0

    def update_status(self, obj: Any) -> Any:
        if not self.lost and self.loses(obj):
            self.lost += 1
            raise Conflict(f"{obj.kind} {obj.metadata.name} changed")
        return super().update_status(obj)


def test_an_admission_lost_to_a_concurrent_write_is_decided_again_at_once(tmp_path: Path) -> None:
    # Before, the pass logged "the next pass sees it" and nothing ran it until the periodic resync
    # (10 s in `up`): a job on an idle machine waited up to that long to start.
    store = LosesFirstWrite(tmp_path / "q.db", lambda o: isinstance(o, Job) and o.status.phase == "Admitted")
    runtime = FakeRuntime()
    runtime.gpus = 4
    manager = Manager(store, [], resync_seconds=3600)
    queue = QueuePass(store, runtime, runtime, make_policy("fair"))
    jobs = JobReconciler(store, runtime, queue, manager.enqueue)
    manager.register(jobs)
    manager.start()
    try:
        store.create(job("prompt", gpus=1))
        wait_for(lambda: store.lost == 1, what="the first admission write lost")
        wait_for(
            lambda: store.get("Job", "default", "prompt").status.phase in ("Admitted", "Running"),
            timeout=5,
            what="admitted by the retried pass, long before any resync",
        )
    finally:
        manager.stop()
        store.close()


def test_a_pass_that_loses_a_write_asks_to_run_again(tmp_path: Path) -> None:
    store = LosesFirstWrite(tmp_path / "q.db", lambda o: isinstance(o, Team))
    runtime = FakeRuntime()
    runtime.gpus = 4
    queue = QueuePass(store, runtime, runtime, make_policy("fair"))
    store.create(team("vision", 4))
    store.create(job("train", "vision", gpus=2))
    assert queue.run() is True  # the Team's usage was not written
    assert queue.run() is False
    written = store.get("Team", "", "vision")
    assert isinstance(written, Team) and written.status.runningJobs == 1
    store.close()
