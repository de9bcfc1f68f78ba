"""The metering loop with a fake runtime, a fake sampler, fake traffic and an injected clock.

Real SQL store and meter store; every tick is driven by hand, so interval boundaries are exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fakes import FakeRuntime
from pilothouse.api.job import Job
from pilothouse.api.modelendpoint import ModelEndpoint, Resources, RevisionRecord
from pilothouse.api.team import Team
from pilothouse.controllers.budgets import BudgetLedger
from pilothouse.controllers.costing import CostReports
from pilothouse.controllers.metering import MeteringLoop
from pilothouse.controllers.queue import QueuePass
from pilothouse.controllers.routes import RevisionStats, Sample
from pilothouse.controllers.usage import Usage
from pilothouse.cost import PriceBook, load_price_book, parse_window
from pilothouse.runtime.protocol import JobRun, OwnerRef, ReplicaState
from pilothouse.scheduling.policies import make_policy
from pilothouse.server.admission import budget_problems
from pilothouse.store.sql import SqlMeterStore, SqlStore
from support import wait_for

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeSampler:
    def __init__(self) -> None:
        self.calls: list[tuple[int, tuple[str, ...]]] = []

    def sample(self, pid: int, devices: Sequence[str]) -> Usage | None:
        self.calls.append((pid, tuple(devices)))
        return Usage(cpu_cores=Decimal("0.5"), memory_bytes=Decimal(2**30))


@dataclass
class FakeTraffic:
    per_second: list[Sample] = field(default_factory=list)
    by_revision: dict[int, int] = field(default_factory=dict)

    def samples(self, namespace: str, name: str, seconds: float) -> list[Sample]:
        return list(self.per_second)

    def revision_stats(self, namespace: str, name: str, revision: int, seconds: float) -> RevisionStats:
        return RevisionStats(self.by_revision.get(revision, 0), 0, None)

    def held(self, namespace: str, name: str) -> int:
        return 0


def endpoint(name: str = "chat", namespace: str = "nlp", **autoscaling: Any) -> ModelEndpoint:
    return ModelEndpoint.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "ModelEndpoint",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "model": {"uri": "/m/iris.joblib"},
                "resources": {"cpu": "2", "memory": "1Gi"},
                "autoscaling": autoscaling,
            },
        }
    )


class Rig:
    def __init__(self, tmp_path: Path, prices: PriceBook | None = None) -> None:
        self.store = SqlStore(tmp_path / "s.db")
        self.meters = SqlMeterStore(tmp_path / "s.db")
        self.runtime = FakeRuntime()
        self.clock = Clock()
        self.sampler = FakeSampler()
        self.traffic = FakeTraffic()
        self.ledger = BudgetLedger()
        self.reports = CostReports(self.meters, prices or PriceBook(), self.clock)
        self.loop = self.new_loop()

    def new_loop(self, budget_period: float = 10) -> MeteringLoop:
        return MeteringLoop(
            self.store,
            self.runtime,
            self.meters,
            self.reports,
            self.ledger,
            jobs=self.runtime,
            usage=self.sampler,
            traffic=self.traffic,
            period=10,
            budget_period=budget_period,
            clock=self.clock,
        )

    def replica(self, owner: ModelEndpoint, rid: str, revision: int = 1, pid: int | None = 4242) -> None:
        assert owner.metadata.uid
        self.runtime.replicas[rid] = ReplicaState(rid, owner.metadata.uid, revision, "Ready", pid=pid)

    def intervals(self) -> dict[str, Any]:
        return {r.interval.id: r for r in self.meters.read(T0 - timedelta(days=1), T0 + timedelta(days=2))}

    def close(self) -> None:
        self.meters.close()
        self.store.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    rig.close()


def test_one_interval_per_replica_opened_on_first_sight_and_closed_when_gone(rig: Rig) -> None:
    chat = rig.store.create(endpoint())
    assert isinstance(chat, ModelEndpoint) and chat.metadata.uid
    rig.replica(chat, "chat-1-a")
    rig.loop.tick()
    rig.clock.advance(10)
    rig.replica(chat, "chat-1-b", pid=None)  # a second replica, not started yet: no usage sample
    rig.loop.tick()
    found = rig.intervals()
    a, b = found[f"{chat.metadata.uid}/chat-1-a"], found[f"{chat.metadata.uid}/chat-1-b"]
    assert (a.interval.start, a.interval.end, b.interval.start) == (T0, None, T0 + timedelta(seconds=10))
    assert a.interval.requested == {"cpu": "2", "memory": str(2**30)}
    assert (a.interval.kind, a.interval.namespace, a.interval.name, a.interval.revision) == (
        "ModelEndpoint",
        "nlp",
        "chat",
        1,
    )
    assert [s.usage["cpu_cores"] for s in a.samples] == ["0.5", "0.5"] and b.samples == ()
    assert rig.sampler.calls == [(4242, ()), (4242, ())]
    del rig.runtime.replicas["chat-1-a"]
    rig.clock.advance(4)
    rig.loop.tick()
    assert rig.intervals()[a.interval.id].interval.end == T0 + timedelta(seconds=14)
    assert rig.intervals()[b.interval.id].interval.end is None
    pool = [r for r in rig.intervals().values() if r.interval.kind == "Pool"]
    assert len(pool) == 1 and pool[0].interval.requested["cpu"] == "64"


def test_a_restart_closes_what_vanished_near_when_it_was_last_seen(rig: Rig) -> None:
    chat = rig.store.create(endpoint())
    assert isinstance(chat, ModelEndpoint)
    rig.replica(chat, "chat-1-a")
    rig.replica(chat, "chat-1-b")
    rig.loop.tick()
    rig.clock.advance(10)
    rig.loop.tick()
    # The control plane dies; an hour later a new one starts and only replica b survived (adopted).
    del rig.runtime.replicas["chat-1-a"]
    rig.clock.advance(3600)
    rig.loop = rig.new_loop()
    rig.loop.tick()
    found = rig.intervals()
    gone, kept = found[f"{chat.metadata.uid}/chat-1-a"], found[f"{chat.metadata.uid}/chat-1-b"]
    assert gone.interval.end == T0 + timedelta(seconds=20)  # last seen at +10, plus one period
    assert kept.interval.end is None and kept.interval.start == T0
    pools = sorted((r.interval for r in found.values() if r.interval.kind == "Pool"), key=lambda i: i.start)
    assert [(p.start, p.end) for p in pools] == [
        (T0, T0 + timedelta(seconds=20)),
        (T0 + timedelta(seconds=3610), None),
    ]
    # Idle capacity is charged for the 20 s plus the new session, not for the hour in between.
    rig.clock.advance(10)
    allocation = rig.reports.allocation(parse_window("7d", rig.clock()), rig.clock())
    [pool] = allocation.pools
    assert pool.capacity.cpu_cores * allocation.window.seconds == 64 * 30


def test_job_workers_are_metered_per_attempt(rig: Rig) -> None:
    job = rig.store.create(
        Job.model_validate(
            {
                "apiVersion": "pilothouse.dev/v1alpha1",
                "kind": "Job",
                "metadata": {"name": "train", "namespace": "vision"},
                "spec": {
                    "command": ["x"],
                    "workers": 2,
                    "resources": {"cpu": "1", "accelerators": {"nvidia.com/gpu": 1}},
                },
            }
        )
    )
    assert job.metadata.uid
    rig.runtime.gpus = 2
    owner = OwnerRef("Job", "vision", "train", job.metadata.uid)
    rig.runtime.start_job(JobRun(owner, 1, 2, ["x"], Resources(cpu="1", accelerators={"nvidia.com/gpu": 1})))
    rig.loop.tick()
    ids = [f"{job.metadata.uid}/attempt-1/worker-{i}" for i in (0, 1)]
    found = rig.intervals()
    assert all(found[i].interval.attempt == 1 and found[i].interval.kind == "Job" for i in ids)
    assert found[ids[0]].interval.requested["nvidia.com/gpu"] == "1"
    assert sorted(rig.sampler.calls) == [(1000, ("0",)), (1001, ("1",))]
    rig.runtime.finish_job(job.metadata.uid, "Succeeded")
    rig.clock.advance(5)
    rig.loop.tick()
    assert all(rig.intervals()[i].interval.end == T0 + timedelta(seconds=5) for i in ids)
    rows = rig.reports.rows("1h", "job")[1]
    assert rows[0].key == {"team": "vision", "name": "train"} and round(rows[0].gpu_hours * 3600, 6) == 10


def test_a_replica_is_charged_what_its_own_revision_requests(rig: Rig) -> None:
    # v1 asked for 2 CPUs; v2 (a canary) asks for 4. While both serve, each replica's interval carries
    # its own revision's requests (from the spec history), not the latest spec's.
    chat = rig.store.create(endpoint())
    assert isinstance(chat, ModelEndpoint) and chat.metadata.uid
    chat.spec.resources.cpu = "4"
    chat = rig.store.update(chat)
    assert isinstance(chat, ModelEndpoint) and chat.metadata.generation == 2
    chat.status.revisions = [
        RevisionRecord(revision=1, generation=1, templateHash="v1"),
        RevisionRecord(revision=2, generation=2, templateHash="v2"),
    ]
    chat.status.latestRevision, chat.status.stableRevision = 2, 1
    chat = rig.store.update_status(chat)
    assert isinstance(chat, ModelEndpoint)
    rig.replica(chat, "chat-1-a", revision=1)
    rig.replica(chat, "chat-2-a", revision=2)
    rig.loop.tick()
    found = rig.intervals()
    uid = chat.metadata.uid
    assert found[f"{uid}/chat-1-a"].interval.requested["cpu"] == "2"
    assert found[f"{uid}/chat-2-a"].interval.requested["cpu"] == "4"


def test_old_usage_samples_are_compacted_once_an_hour(rig: Rig) -> None:
    loop = rig.new_loop()
    loop.raw_samples_for = timedelta(hours=1)
    chat = rig.store.create(endpoint())
    assert isinstance(chat, ModelEndpoint)
    rig.replica(chat, "chat-1-a")
    for _ in range(3 * 60 + 1):  # three hours, a pass a minute
        loop.tick()
        rig.clock.advance(60)
    uid = chat.metadata.uid
    samples = rig.intervals()[f"{uid}/chat-1-a"].samples
    old = [s for s in samples if s.at < T0 + timedelta(hours=1)]
    recent = [s for s in samples if s.at >= T0 + timedelta(hours=2)]
    assert len(old) == 3, "the first hour is compacted to three samples"
    assert len(recent) == 61, "the last hour is kept as taken"


def test_requests_are_tallied_per_revision_and_split_over_its_replicas(rig: Rig) -> None:
    chat = rig.store.create(endpoint())
    assert isinstance(chat, ModelEndpoint)
    rig.replica(chat, "chat-1-a")
    rig.replica(chat, "chat-1-b")
    rig.replica(chat, "chat-2-a", revision=2)
    rig.loop.tick()  # first sight: counting starts about one period back
    now = rig.clock().timestamp()
    rig.traffic.per_second = [Sample(now - 30, 1.0, 50), Sample(now + 1, 1.0, 7), Sample(now + 2, 1.0, 3)]
    rig.traffic.by_revision = {1: 80, 2: 20}
    rig.clock.advance(10)
    rig.loop.tick()
    rig.clock.advance(10)
    rig.loop.tick()  # the same seconds are not counted twice
    counts = {
        i.split("/")[1]: sum(t.count for t in r.tallies) for i, r in rig.intervals().items() if "/" in i
    }
    counts.pop("local")
    assert counts == {"chat-1-a": 4, "chat-1-b": 4, "chat-2-a": 2}
    [row] = [r for r in rig.reports.rows("1h", "endpoint")[1] if r.key.get("name") == "chat"]
    assert row.requests == 10 and row.cost_per_1k_requests is not None


def test_budgets_are_priced_into_team_status_and_hold_new_jobs(tmp_path: Path) -> None:
    rig = Rig(tmp_path, load_price_book({"cpuCoreHour": 3600}))  # $1 per core-second
    try:
        rig.store.create(
            Team.model_validate(
                {
                    "apiVersion": "pilothouse.dev/v1alpha1",
                    "kind": "Team",
                    "metadata": {"name": "nlp"},
                    "spec": {"budget": {"monthlyAmount": 30, "actions": ["hold-jobs", "refuse-endpoints"]}},
                }
            )
        )
        chat = rig.store.create(endpoint())
        assert isinstance(chat, ModelEndpoint)
        rig.replica(chat, "chat-1-a")
        rig.loop.tick()
        team = rig.store.get("Team", "", "nlp")
        assert isinstance(team, Team) and team.status.budgetState is not None
        assert team.status.spendThisMonth == "0.00" and team.status.budgetState.startswith("ok:")
        rig.clock.advance(10)  # 2 cores x 10 s = $20: past the 50% warning
        rig.loop.tick()
        team = rig.store.get("Team", "", "nlp")
        assert isinstance(team, Team) and team.status.budgetState is not None
        assert team.status.spendThisMonth == "20.00" and team.status.budgetState.startswith("warning:")
        rig.clock.advance(10)  # $40 of $30
        rig.loop.tick()
        team = rig.store.get("Team", "", "nlp")
        assert isinstance(team, Team) and team.status.budgetState is not None
        assert team.status.budgetState.startswith("exceeded: team nlp has spent $40.00 of its $30.00")
        reasons = [e.reason for e in rig.store.list_events()]
        assert reasons == ["BudgetWarning", "BudgetExceeded"]

        rig.store.create(
            Job.model_validate(
                {
                    "apiVersion": "pilothouse.dev/v1alpha1",
                    "kind": "Job",
                    "metadata": {"name": "train", "namespace": "nlp"},
                    "spec": {"command": ["x"]},
                }
            )
        )
        queue = QueuePass(
            rig.store,
            rig.runtime,
            rig.runtime,
            make_policy("fair"),
            lambda: rig.clock().timestamp(),
            rig.ledger,
        )
        queue.run()
        job = rig.store.get("Job", "nlp", "train")
        assert isinstance(job, Job)
        assert (job.status.phase, job.status.reason) == ("Pending", "BudgetExceeded")
        assert "new jobs are held" in job.status.message and rig.runtime.started_runs == []

        state = rig.ledger.state(team, rig.clock())
        assert state is not None and state.refuses_endpoints
        assert [p.path for p in budget_problems(endpoint("new"), None, state.reason)] == [
            "metadata.namespace"
        ]
    finally:
        rig.close()


def budget_team(amount: float) -> Team:
    return Team.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "Team",
            "metadata": {"name": "nlp"},
            "spec": {"budget": {"monthlyAmount": amount, "actions": ["hold-jobs"]}},
        }
    )


def test_a_new_price_book_reprices_budgets_on_the_next_pass(rig: Rig) -> None:
    rig.loop = rig.new_loop(budget_period=3600)  # without a reprice, the month is priced hourly
    rig.reports.prices.on_change(lambda _book: rig.loop.reprice())  # as `pilothouse up` wires it
    rig.store.create(budget_team(30))
    chat = rig.store.create(endpoint())
    assert isinstance(chat, ModelEndpoint)
    rig.replica(chat, "chat-1-a")
    rig.loop.tick()
    rig.clock.advance(10)
    rig.loop.tick()  # 2 cores x 10 s at OpenCost's default price: $0.000176 (not repriced anyway)
    team = rig.store.get("Team", "", "nlp")
    assert isinstance(team, Team) and team.status.spendThisMonth == "0.00"
    rig.reports.prices.replace(load_price_book({"cpuCoreHour": 3600}))  # $1 per core-second
    rig.loop.tick()  # the next pass prices the month with the new book: 2 cores x 10 s = $20 (+ memory)
    team = rig.store.get("Team", "", "nlp")
    assert isinstance(team, Team) and team.status.spendThisMonth == "20.00"
    assert team.status.budgetState is not None and team.status.budgetState.startswith("warning:")
    state = rig.ledger.state(team, rig.clock())
    assert state is not None and state.level == "warning" and state.percent == 66
    rig.clock.advance(10)
    rig.loop.tick()  # and only once: the pass after that waits for the budget period again
    spend = rig.ledger.spend("nlp", rig.clock())
    assert spend is not None and round(spend, 2) == 20


def test_a_reprice_wakes_the_running_loop(rig: Rig) -> None:
    rig.loop = rig.new_loop(budget_period=3600)
    rig.loop.period = 3600  # the thread would sleep for an hour after its first pass
    rig.store.create(budget_team(30))
    chat = rig.store.create(endpoint())
    assert isinstance(chat, ModelEndpoint)
    rig.replica(chat, "chat-1-a")
    rig.loop.start()
    try:
        wait_for(lambda: rig.ledger.spend("nlp", rig.clock()) is not None, timeout=10, what="first pass")
        rig.clock.advance(10)
        rig.reports.prices.replace(load_price_book({"cpuCoreHour": 3600}))
        rig.loop.reprice()
        wait_for(
            lambda: round(rig.ledger.spend("nlp", rig.clock()) or 0, 2) == 20, timeout=10, what="new prices"
        )
    finally:
        rig.loop.stop(close_open=False, timeout=10)


@pytest.mark.parametrize(
    ("old", "new", "refused"),
    [
        ({"minReplicas": 1, "maxReplicas": 3}, {"minReplicas": 1, "maxReplicas": 3}, False),
        ({"minReplicas": 1, "maxReplicas": 3}, {"minReplicas": 0, "maxReplicas": 2}, False),
        ({"minReplicas": 1, "maxReplicas": 3}, {"minReplicas": 2, "maxReplicas": 3}, True),
        ({"minReplicas": 1, "maxReplicas": 3}, {"minReplicas": 1, "maxReplicas": 4}, True),
        (
            {"minReplicas": 1, "maxReplicas": 3},
            {
                "minReplicas": 1,
                "maxReplicas": 3,
                "schedules": [{"start": "08:00", "end": "20:00", "maxReplicas": 8}],
            },
            True,
        ),
    ],
)
def test_scale_ups_are_refused_and_scale_downs_are_not(
    old: dict[str, Any], new: dict[str, Any], refused: bool
) -> None:
    problems = budget_problems(endpoint(**new), endpoint(**old), "team nlp has spent ...")
    assert [p.path for p in problems] == (["spec.autoscaling"] if refused else [])
    assert budget_problems(endpoint(**new), None, None) == []
