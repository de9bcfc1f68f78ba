"""The control plane's metrics: manager hooks, job admission waits, scrape-time state, NVML telemetry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fakes import FakeRuntime
from observability.fake_nvml import EmptyStore, FakeNvml
from observability.test_observability_e2e import naming_problems
from pilothouse.api.job import Job
from pilothouse.api.team import Team
from pilothouse.controllers.manager import Manager, ObjectKey, Result
from pilothouse.controllers.metrics import ControlPlaneCollector, ControlPlaneMetrics
from pilothouse.controllers.queue import QueuePass
from pilothouse.observability.gpus import NvmlTelemetry
from pilothouse.runtime.protocol import HandoverSummary, JobRunState, OwnerRef, ReplicaState, WorkerState
from pilothouse.scheduling.policies import make_policy
from pilothouse.store.sql import SqlStore
from support import wait_for


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


class Flaky:
    kind = "ModelEndpoint"

    def reconcile(self, key: ObjectKey) -> Result:
        if key.name == "bad":
            raise RuntimeError("injected")
        return Result(requeue_after=60.0 if key.name == "again" else None)

    def resync(self, live_keys: set[ObjectKey]) -> None:
        return None


def test_manager_hooks_count_reconciles_by_result_and_time_them(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = ControlPlaneMetrics(registry)
    store = SqlStore(tmp_path / "db.sqlite")
    manager = Manager(store, [], metrics=metrics, resync_seconds=3600)
    manager.register(Flaky())
    before = samples(registry)
    kind = (("kind", "ModelEndpoint"),)
    assert before[("pilothouse_controller_reconcile_total", (*kind, ("result", "error")))] == 0
    assert before[("pilothouse_controller_workqueue_depth", ())] == 0
    manager.start()
    try:
        for name in ("ok", "again", "bad"):
            manager.enqueue(ObjectKey("ModelEndpoint", "default", name))
        wait_for(lambda: manager.error_count >= 1 and manager.reconcile_count >= 2, timeout=10)
    finally:
        manager.stop()
        store.close()
    after = samples(registry)
    assert after[("pilothouse_controller_reconcile_total", (*kind, ("result", "success")))] == 1
    assert after[("pilothouse_controller_reconcile_total", (*kind, ("result", "requeue")))] == 1
    assert after[("pilothouse_controller_reconcile_total", (*kind, ("result", "error")))] >= 1
    assert after[("pilothouse_controller_reconcile_errors_total", kind)] >= 1
    assert after[("pilothouse_controller_reconcile_duration_seconds_count", kind)] >= 3
    assert after[("pilothouse_controller_workqueue_depth", ())] >= 1  # "again" and the backoff of "bad"


def _job(uid: str, created: datetime, admitted: datetime | None, namespace: str = "ml", **status: Any) -> Job:
    return Job.model_validate(
        {
            "metadata": {"name": uid, "namespace": namespace, "uid": uid, "creationTimestamp": created},
            "spec": {"command": ["true"]},
            "status": {"admittedTime": admitted, **status},
        }
    )


def test_admission_wait_is_observed_once_per_job_for_first_admissions_in_this_process() -> None:
    now = datetime.now(UTC)
    registry = CollectorRegistry()
    metrics = ControlPlaneMetrics(registry, clock=now.timestamp)
    metrics.observed("ADDED", _job("a", now - timedelta(seconds=40), None))
    metrics.observed("MODIFIED", _job("a", now - timedelta(seconds=40), now))
    metrics.observed("MODIFIED", _job("a", now - timedelta(seconds=40), now))  # seen already
    metrics.observed(
        "MODIFIED", _job("old", now - timedelta(hours=2), now - timedelta(hours=1))
    )  # before start
    metrics.observed("MODIFIED", _job("pre", now - timedelta(seconds=9), now, preemptions=1))  # readmission
    metrics.observed("MODIFIED", _job("b", now - timedelta(seconds=2), now, namespace="cv"))
    metrics.observed("DELETED", _job("a", now - timedelta(seconds=40), now))
    got = samples(registry)
    assert got[("pilothouse_job_admission_wait_seconds_count", (("namespace", "ml"),))] == 1
    assert got[("pilothouse_job_admission_wait_seconds_sum", (("namespace", "ml"),))] == 40
    assert got[("pilothouse_job_admission_wait_seconds_sum", (("namespace", "cv"),))] == 2


class Store:
    def __init__(self, objects: dict[str, list[Any]]) -> None:
        self.objects = objects

    def list(self, kind: str, namespace: str | None = None) -> Any:
        return SimpleNamespace(items=self.objects.get(kind, []), resource_version=1)


class Jobs(FakeRuntime):
    def __init__(self, gpus: int) -> None:
        super().__init__()
        self.total = gpus

    def capacity(self) -> dict[str, int]:
        return {"nvidia.com/gpu": self.total, "cpu": 8000, "memory": 2**34}


def test_collector_reports_phases_allocation_and_gpu_telemetry_by_owner() -> None:
    now = datetime.now(UTC)
    job = _job("job-uid", now, now, phase="Running", startTime=now)
    runtime = Jobs(gpus=4)
    owner = OwnerRef("Job", "ml", "job-uid", "job-uid")
    runtime.replicas["r1"] = ReplicaState("r1", "orphan-uid", 1, "Ready", devices=("3",))
    runtime.job_runs["job-uid"] = JobRunState(
        owner.uid, 1, "Running", (WorkerState(0, 123, ("0", "1"), None),), started_at=now.timestamp()
    )
    nvml = FakeNvml(count=4, power=False, broken={2})
    registry = CollectorRegistry()
    registry.register(ControlPlaneCollector(Store({"Job": [job]}), runtime, runtime, NvmlTelemetry(nvml)))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert naming_problems(text) == []
    got = samples(registry)
    gpu = "nvidia.com/gpu"
    assert got[("pilothouse_accelerator_devices", (("resource", gpu), ("state", "allocated")))] == 3
    assert got[("pilothouse_accelerator_devices", (("resource", gpu), ("state", "free")))] == 1
    assert got[("pilothouse_jobs", (("namespace", "ml"), ("phase", "Running")))] == 1
    assert got[("pilothouse_jobs", (("namespace", "ml"), ("phase", "Pending")))] == 0

    def labels(index: str, kind: str, ns: str, name: str) -> tuple[tuple[str, str], ...]:
        return (("gpu", index), ("namespace", ns), ("owner", name), ("owner_kind", kind))

    assert got[("pilothouse_gpu_utilization_ratio", labels("1", "Job", "ml", "job-uid"))] == 0.1
    assert got[("pilothouse_gpu_memory_used_bytes", labels("1", "Job", "ml", "job-uid"))] == 2**30
    assert got[("pilothouse_gpu_utilization_ratio", labels("3", "orphan", "", ""))] == 0.3
    assert not any(k[0] == "pilothouse_gpu_power_watts" for k in got)  # power not supported: absent
    assert not any(("gpu", "2") in k[1] for k in got)  # a device NVML fails on is skipped


def test_collector_exports_each_teams_spend_and_budget() -> None:
    def team(name: str, budget: float | None, spend: str | None) -> Team:
        return Team.model_validate(
            {
                "metadata": {"name": name},
                "spec": {"budget": {"monthlyAmount": budget}} if budget is not None else {},
                "status": {"spendThisMonth": spend},
            }
        )

    teams = [team("ml", 1000.0, "212.47"), team("cv", None, "3.10"), team("nlp", 50.0, None)]
    registry = CollectorRegistry()
    registry.register(ControlPlaneCollector(Store({"Team": teams}), FakeRuntime(), None, None))  # type: ignore[arg-type]
    assert naming_problems(generate_latest(registry).decode()) == []
    got = samples(registry)
    spend = {k[1]: v for k, v in got.items() if k[0] == "pilothouse_team_spend_dollars"}
    budget = {k[1]: v for k, v in got.items() if k[0] == "pilothouse_team_budget_dollars"}
    assert spend == {(("team", "ml"),): 212.47, (("team", "cv"),): 3.10}
    assert budget == {(("team", "ml"),): 1000.0, (("team", "nlp"),): 50.0}


def test_without_nvml_there_are_no_gpu_series() -> None:
    registry = CollectorRegistry()
    registry.register(ControlPlaneCollector(EmptyStore(), FakeRuntime(), None, None))  # type: ignore[arg-type]
    names = {f.name for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert names == {
        "pilothouse_endpoints",
        "pilothouse_jobs",
        "pilothouse_accelerator_devices",
        "pilothouse_team_spend_dollars",
        "pilothouse_team_budget_dollars",
    }
    broken = NvmlTelemetry(SimpleNamespace(nvmlDeviceGetCount=lambda: (_ for _ in ()).throw(OSError())))  # type: ignore[arg-type]
    assert broken.read() == []


def test_naming_checker_catches_bad_names() -> None:
    bad = (
        "# TYPE requests counter\nrequests_total 1\n"
        "# TYPE pilothouse_latency_ms gauge\npilothouse_latency_ms 1\n"
        "# TYPE pilothouse_things_total gauge\npilothouse_things_total 1\n"
        '# TYPE pilothouse_x gauge\npilothouse_x{uid="0b8e7f3c-1d2a-4c5b-9e8f-7a6b5c4d3e2f"} 1\n'
        '# TYPE pilothouse_y gauge\npilothouse_y{url="http://10.0.0.1:8080"} 1\n'
        "# TYPE pilothouse_memory gauge\npilothouse_memory 1\n"
    )
    problems = "\n".join(naming_problems(bad))
    for fragment in (
        "requests: no pilothouse_ prefix",
        "pilothouse_latency_ms: a timing without the _seconds unit",
        "pilothouse_things_total: a gauge must not end in _total",
        "unbounded label name 'uid'",
        "looks like an id or URL",
        "pilothouse_memory: a size without the _bytes unit",
    ):
        assert fragment in problems


def test_collector_exports_gpu_handover_latency_where_the_runtime_hands_devices_over() -> None:
    runtime = FakeRuntime()
    registry = CollectorRegistry()
    registry.register(ControlPlaneCollector(EmptyStore(), runtime, runtime, None))  # type: ignore[arg-type]
    assert not any(k[0].startswith("pilothouse_gpu_handover") for k in samples(registry))  # None: absent
    runtime.handovers = HandoverSummary(count=3, total_seconds=0.6, max_seconds=0.35)
    assert naming_problems(generate_latest(registry).decode()) == []
    got = samples(registry)
    assert got[("pilothouse_gpu_handover_seconds_count", ())] == 3
    assert got[("pilothouse_gpu_handover_seconds_sum", ())] == 0.6
    assert got[("pilothouse_gpu_handover_max_seconds", ())] == 0.35


def test_queue_pass_counts_accelerator_seconds_idle_while_jobs_wait(tmp_path: Path) -> None:
    # 4 GPUs; "holder" runs on 2; "wide" wants 3 and waits: 2 GPUs sit idle while it does.
    store = SqlStore(tmp_path / "q.db")
    runtime = FakeRuntime()
    runtime.gpus = 4
    clock = [1000.0]
    metrics = ControlPlaneMetrics(CollectorRegistry(), clock=lambda: clock[0])
    queue = QueuePass(
        store,
        runtime,
        runtime,
        make_policy("fair"),
        clock=lambda: clock[0],
        on_idle=metrics.idle_while_waiting_seconds,
    )

    def idle() -> float:
        value = metrics.registry.get_sample_value(
            "pilothouse_gpu_idle_while_jobs_wait_seconds_total", {"resource": "nvidia.com/gpu"}
        )
        return value or 0.0

    def job(name: str, gpus: int) -> Job:
        return Job.model_validate(
            {
                "metadata": {"name": name, "namespace": "ml"},
                "spec": {"command": ["true"], "resources": {"accelerators": {"nvidia.com/gpu": gpus}}},
            }
        )

    store.create(job("holder", 2))
    queue.run()  # admits holder; nothing waits
    assert store.get("Job", "ml", "holder").status.phase == "Admitted"
    store.create(job("wide", 3))
    clock[0] += 5.0
    queue.run()  # wide waits from here on, with 2 GPUs free
    clock[0] += 10.0
    queue.run()
    assert idle() == 20.0  # 2 GPUs x 10 s (the 5 s before wide existed, with nothing waiting, count 0)
    store.create(job("huge", 9))  # inadmissible: not work that could use the idle GPUs
    clock[0] += 1.0
    queue.run()
    assert idle() == 22.0
    store.delete("Job", "ml", "wide")
    clock[0] += 1.0
    queue.run()  # the last second wide waited still counts
    clock[0] += 10.0
    queue.run()  # only huge is pending now, and it can never use them: nothing more counts
    assert idle() == 24.0
    store.close()
