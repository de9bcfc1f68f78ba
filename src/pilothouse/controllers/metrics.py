"""The control plane's Prometheus metrics, on a registry the composition root passes in.

Two kinds of numbers, collected two ways:

- *Events* the manager sees as they happen — a reconcile finished (how long, did it fail), a job was
  admitted (how long after it was submitted) — are counters and histograms in
  :class:`ControlPlaneMetrics`, updated by the manager's marked hooks (``prometheus_client`` children are
  thread-safe; the manager's workers are threads).
- *State* — objects by phase, accelerators allocated and free, GPU telemetry per device and owner, each
  team's month-to-date spend and budget, the work queue's depth — is read at scrape time by :class:`ControlPlaneCollector` from the store and the
  runtime protocols, so it is never stale and costs nothing between scrapes.

Names follow Prometheus conventions (``pilothouse_`` prefix, base units, ``_total`` counters). Every label
set is bounded: kinds, phases, result, resource names, device indices, and workload *names* (bounded by
what users declare) — never uids, replica ids, URLs or request ids.

Nothing is registered on import and no global registry is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from pilothouse.api.job import Job, JobPhase
from pilothouse.api.meta import get_condition
from pilothouse.api.modelendpoint import DEFAULT_GPU_RESOURCE, ModelEndpoint
from pilothouse.api.registry import Resource
from pilothouse.api.team import Team
from pilothouse.observability.gpus import GpuTelemetry
from pilothouse.runtime.protocol import HandoverSummary, JobRuntime, Runtime
from pilothouse.store.protocol import Store

RECONCILE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Admission waits range from milliseconds (an idle machine) to days (a busy cluster).
ADMISSION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 3 * 3600.0,
                     6 * 3600.0, 12 * 3600.0, 86400.0, 3 * 86400.0)  # fmt: skip
JOB_PHASES: tuple[JobPhase, ...] = ("Pending", "Admitted", "Running", "Preempting", "Succeeded", "Failed")
ENDPOINT_PHASES = ("Pending", "Ready", "ScaledToZero", "NotReady")
RESULTS = ("success", "error", "requeue")
_HOST_RESOURCES = frozenset({"cpu", "memory"})


def endpoint_phase(endpoint: ModelEndpoint) -> str:
    """A bounded summary of an endpoint's Ready condition (endpoints have no ``status.phase``)."""
    ready = get_condition(endpoint.status.conditions, "Ready")
    if ready is None:
        return "Pending"
    if ready.reason == "ScaledToZero":
        return "ScaledToZero"
    return "Ready" if ready.status == "True" else "NotReady"


class ControlPlaneMetrics:
    """Counters and histograms the manager feeds; see the module docstring."""

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self._clock = clock
        self._started = clock()
        self.reconciles = Counter(
            "pilothouse_controller_reconcile",
            "Reconciles finished, by kind and result (success, error, requeue: success asking to run again).",
            ["kind", "result"],
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "pilothouse_controller_reconcile_errors",
            "Reconciles that raised (retried with backoff), by kind.",
            ["kind"],
            registry=registry,
        )
        self.reconcile_duration = Histogram(
            "pilothouse_controller_reconcile_duration_seconds",
            "Time one reconcile took, by kind.",
            ["kind"],
            buckets=RECONCILE_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "pilothouse_controller_workqueue_depth",
            "Keys waiting in the controllers' work queue (ready now or after a delay).",
            registry=registry,
        )
        self.admission_wait = Histogram(
            "pilothouse_job_admission_wait_seconds",
            "Time from a job's submission to its first admission by the queue, by namespace (team).",
            ["namespace"],
            buckets=ADMISSION_BUCKETS,
            registry=registry,
        )
        self._admitted: set[str] = set()
        self.idle_while_waiting = Counter(
            "pilothouse_gpu_idle_while_jobs_wait_seconds",
            "Accelerator-seconds free while at least one admissible job waited (the queue pass's view: "
            "capacity for jobs minus what running and admitted jobs hold), by resource. 0 growth = no "
            "accelerator sat idle while work waited.",
            ["resource"],
            registry=registry,
        )

    # -- hooks (called by the manager) ------------------------------------------------------------

    def track_kind(self, kind: str) -> None:
        """Start every series of a kind at zero, so rates are defined before the first reconcile."""
        for result in RESULTS:
            self.reconciles.labels(kind, result)
        self.reconcile_errors.labels(kind)
        self.reconcile_duration.labels(kind)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))

    def reconciled(self, kind: str, seconds: float, *, error: bool, requeue: bool = False) -> None:
        result = "error" if error else "requeue" if requeue else "success"
        self.reconciles.labels(kind, result).inc()
        if error:
            self.reconcile_errors.labels(kind).inc()
        self.reconcile_duration.labels(kind).observe(seconds)

    def idle_while_waiting_seconds(self, resource: str, seconds: float) -> None:
        """Hook for the queue pass: ``seconds`` accelerator-seconds of ``resource`` were idle while jobs
        waited."""
        self.idle_while_waiting.labels(resource).inc(seconds)

    def observed(self, event_type: str, obj: Resource) -> None:
        """A store event: a job seen admitted for the first time adds its submit -> admitted wait.

        Counted once per job (by uid), only for first admissions (no preemption yet) that happened while
        this process ran, so a restarted control plane does not count old admissions again.
        """
        if not isinstance(obj, Job) or obj.metadata.uid is None:
            return
        uid = obj.metadata.uid
        if event_type == "DELETED":
            self._admitted.discard(uid)
            return
        status = obj.status
        created = obj.metadata.creationTimestamp
        if status.admittedTime is None or created is None or uid in self._admitted:
            return
        self._admitted.add(uid)
        if status.preemptions or status.admittedTime.timestamp() < self._started - 1.0:
            return
        wait = max(0.0, (status.admittedTime - created).total_seconds())
        self.admission_wait.labels(obj.metadata.namespace).observe(wait)


# -- who holds which device ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceOwner:
    kind: str
    namespace: str
    name: str
    since: datetime | None = None
    """When the owner started holding it, where known (a job's start time)."""


def split_device(label: str) -> tuple[str, str]:
    """A ``ReplicaState.devices`` entry -> (resource, index): bare indices are NVIDIA GPUs."""
    resource, sep, index = label.rpartition(":")
    return (resource, index) if sep else (DEFAULT_GPU_RESOURCE, label)


def device_owners(
    runtime: Runtime, jobs: JobRuntime | None, owners: dict[str, Resource]
) -> dict[tuple[str, str], DeviceOwner]:
    """(resource, index) -> its holder, from the runtime's observations of replicas and job workers.

    ``owners`` maps uids to stored objects; a holder whose object is gone (being cleaned up) is shown
    with kind ``orphan`` and no name.
    """

    def owner_of(uid: str) -> DeviceOwner:
        obj = owners.get(uid)
        if obj is None:
            return DeviceOwner("orphan", "", "")
        since = obj.status.startTime if isinstance(obj, Job) else None
        return DeviceOwner(obj.kind, obj.metadata.namespace, obj.metadata.name, since)

    held: dict[tuple[str, str], DeviceOwner] = {}
    for uid in sorted(runtime.owners()):
        for replica in runtime.observe(uid):
            for device in replica.devices:
                held[split_device(device)] = owner_of(uid)
    if jobs is not None:
        for uid in sorted(jobs.job_owners()):
            state = jobs.observe_job(uid)
            if state is None or state.phase in ("Succeeded", "Failed", "Stopped"):
                continue
            for worker in state.workers:
                for device in worker.devices:
                    held[split_device(device)] = owner_of(uid)
    return held


def accelerator_totals(jobs: JobRuntime | None) -> dict[str, int]:
    """Accelerator resources and their device counts from ``capacity()`` (cpu and memory left out)."""
    if jobs is None:
        return {}
    return {k: v for k, v in jobs.capacity().items() if k not in _HOST_RESOURCES}


# -- scrape-time state -----------------------------------------------------------------------------


class ControlPlaneCollector(Collector):
    """Objects by phase, accelerators allocated/free, and GPU telemetry per device and owner."""

    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        jobs: JobRuntime | None,
        gpus: GpuTelemetry | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.jobs = jobs
        self.gpus = gpus

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # state is read at scrape time only; nothing to read at registration

    def collect(self) -> Iterator[Metric]:
        endpoints = [o for o in self.store.list("ModelEndpoint").items if isinstance(o, ModelEndpoint)]
        jobs = [o for o in self.store.list("Job").items if isinstance(o, Job)]
        yield _by_phase(
            "pilothouse_endpoints",
            "ModelEndpoints by namespace and phase (a summary of the Ready condition).",
            ENDPOINT_PHASES,
            [(e.metadata.namespace, endpoint_phase(e)) for e in endpoints],
        )
        yield _by_phase(
            "pilothouse_jobs",
            "Jobs by namespace and phase.",
            JOB_PHASES,
            [(j.metadata.namespace, j.status.phase) for j in jobs],
        )
        owners: dict[str, Resource] = {}
        objects: list[Resource] = [*endpoints, *jobs]
        for obj in objects:
            if obj.metadata.uid:
                owners[obj.metadata.uid] = obj
        held = device_owners(self.runtime, self.jobs, owners)
        devices = GaugeMetricFamily(
            "pilothouse_accelerator_devices",
            "Accelerator devices by resource and state (allocated to a replica or job worker, or free).",
            labels=["resource", "state"],
        )
        for resource, total in sorted(accelerator_totals(self.jobs).items()):
            allocated = sum(1 for (r, _) in held if r == resource)
            devices.add_metric([resource, "allocated"], allocated)
            devices.add_metric([resource, "free"], max(0, total - allocated))
        yield devices
        yield from _budget_families([t for t in self.store.list("Team").items if isinstance(t, Team)])
        handovers = self.jobs.handover_summary() if self.jobs is not None else None
        if handovers is not None:
            yield from _handover_families(handovers)
        if self.gpus is not None:
            yield from _gpu_families(self.gpus, held)


def _handover_families(summary: HandoverSummary) -> Iterator[Metric]:
    """Accelerator hand-over latency (released clean by its last holder -> the next job worker on it
    started), over every hand-over since the runtime started."""
    yield SummaryMetricFamily(
        "pilothouse_gpu_handover_seconds",
        "Time from an accelerator's clean release by its last holder to the start of the next job worker on it.",
        count_value=summary.count,
        sum_value=summary.total_seconds,
    )
    longest = GaugeMetricFamily(
        "pilothouse_gpu_handover_max_seconds", "The longest accelerator hand-over since the runtime started."
    )
    longest.add_metric([], summary.max_seconds)
    yield longest


def _budget_families(teams: list[Team]) -> Iterator[GaugeMetricFamily]:
    """Month-to-date spend (what metering last priced into ``status.spendThisMonth``) and the monthly
    budget, per team, so Prometheus can alert on budget burn with the platform's own numbers."""
    spend = GaugeMetricFamily(
        "pilothouse_team_spend_dollars",
        "Cost of a team's workloads this calendar month (UTC) so far, in US dollars, from metering.",
        labels=["team"],
    )
    budget = GaugeMetricFamily(
        "pilothouse_team_budget_dollars",
        "A team's monthly budget (spec.budget.monthlyAmount), in US dollars.",
        labels=["team"],
    )
    for team in sorted(teams, key=lambda t: t.metadata.name):
        if team.status.spendThisMonth is not None:
            spend.add_metric([team.metadata.name], float(Decimal(team.status.spendThisMonth)))
        if team.spec.budget is not None:
            budget.add_metric([team.metadata.name], team.spec.budget.monthlyAmount)
    yield spend
    yield budget


def _by_phase(name: str, doc: str, phases: tuple[str, ...], rows: list[tuple[str, str]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["namespace", "phase"])
    counts: dict[tuple[str, str], int] = {}
    for namespace, phase in rows:
        counts[(namespace, phase)] = counts.get((namespace, phase), 0) + 1
    for namespace in sorted({ns for ns, _ in rows}):
        for phase in phases:
            family.add_metric([namespace, phase], counts.get((namespace, phase), 0))
    return family


def _gpu_families(
    gpus: GpuTelemetry, held: dict[tuple[str, str], DeviceOwner]
) -> Iterator[GaugeMetricFamily]:
    labels = ["gpu", "owner_kind", "namespace", "owner"]
    util = GaugeMetricFamily(
        "pilothouse_gpu_utilization_ratio",
        "Fraction of the last sample period a kernel ran on the GPU (NVML), with its owning workload.",
        labels=labels,
    )
    used = GaugeMetricFamily(
        "pilothouse_gpu_memory_used_bytes",
        "GPU memory in use (NVML), with its owning workload.",
        labels=labels,
    )
    total = GaugeMetricFamily("pilothouse_gpu_memory_total_bytes", "GPU memory (NVML).", labels=["gpu"])
    power = GaugeMetricFamily(
        "pilothouse_gpu_power_watts", "GPU power draw (NVML), with its owning workload.", labels=labels
    )
    for reading in gpus.read():
        owner = held.get((DEFAULT_GPU_RESOURCE, str(reading.index)))
        values = [str(reading.index), *((owner.kind, owner.namespace, owner.name) if owner else ("", "", ""))]
        if reading.utilization_ratio is not None:
            util.add_metric(values, reading.utilization_ratio)
        if reading.memory_used_bytes is not None:
            used.add_metric(values, reading.memory_used_bytes)
        if reading.memory_total_bytes is not None:
            total.add_metric([str(reading.index)], reading.memory_total_bytes)
        if reading.power_watts is not None:
            power.add_metric(values, reading.power_watts)
    yield from (util, used, total, power)
