"""The summaries behind ``pilothouse top``: endpoints, jobs and GPUs as they are right now.

Served under their own API group, ``/apis/top.pilothouse.dev/v1alpha1/{endpoints,jobs,gpus}`` — the
way ``metrics.k8s.io`` backs ``kubectl top`` — so the CLI stays a plain HTTP client. Traffic numbers come
from the gateway's in-process windows (the embedded control plane holds the gateway's ``RouteTable``):
requests/s is the mean of the last ``window`` complete seconds, p99 the worst of the serving revisions'
windowed p99s (bucket upper bounds, so it over- rather than under-states). Allocation comes from the
runtime's observations; utilization, where NVML is present, from the same telemetry as ``/metrics``.

Routes are sync: they read the store and hop onto the gateway's loop, never blocking it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Query

from pilothouse.api.job import Job
from pilothouse.api.modelendpoint import DEFAULT_GPU_RESOURCE, ModelEndpoint
from pilothouse.api.registry import Resource
from pilothouse.controllers.metrics import (
    accelerator_totals,
    device_owners,
    endpoint_phase,
    split_device,
)
from pilothouse.observability.gpus import GpuReading, GpuTelemetry
from pilothouse.runtime.protocol import JobRuntime, Runtime
from pilothouse.serving.gateway.spec import RevisionStats, Sample
from pilothouse.store.protocol import Store

PREFIX = "/apis/top.pilothouse.dev/v1alpha1"
DEFAULT_WINDOW_S = 30


class TrafficWindows(Protocol):
    """What the gateway's ``RouteTable`` offers about recent traffic."""

    def samples(self, namespace: str, name: str, seconds: float) -> list[Sample]: ...

    def revision_stats(self, namespace: str, name: str, revision: int, seconds: float) -> RevisionStats: ...


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def top_router(
    store: Store,
    runtime: Runtime,
    jobs: JobRuntime | None,
    traffic: TrafficWindows | None,
    gpus: GpuTelemetry | None = None,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["top"])

    def readings() -> dict[str, GpuReading]:
        return {str(r.index): r for r in gpus.read()} if gpus is not None else {}

    def owners() -> dict[str, Resource]:
        out: dict[str, Resource] = {}
        for kind in ("ModelEndpoint", "Job"):
            for obj in store.list(kind).items:
                if obj.metadata.uid:
                    out[obj.metadata.uid] = obj
        return out

    @router.get("/endpoints")
    def endpoints(
        namespace: str | None = None, window: Annotated[int, Query(ge=1, le=300)] = DEFAULT_WINDOW_S
    ) -> dict[str, Any]:
        telemetry = readings()
        items = []
        for obj in store.list("ModelEndpoint", namespace).items:
            assert isinstance(obj, ModelEndpoint)
            ns, name = obj.metadata.namespace, obj.metadata.name
            samples = traffic.samples(ns, name, window) if traffic is not None else []
            requests = errors = 0
            p99: float | None = None
            for target in obj.status.traffic:
                stats = traffic.revision_stats(ns, name, target.revision, window) if traffic else None
                if stats is None or not stats.requests:
                    continue
                requests += stats.requests
                errors += stats.errors
                if stats.p99_seconds is not None:
                    p99 = stats.p99_seconds if p99 is None else max(p99, stats.p99_seconds)
            devices = sorted(
                {d for r in runtime.observe(obj.metadata.uid or "") for d in r.devices},
                key=lambda d: (len(d), d),
            )
            gpu_ids = [i for r, i in map(split_device, devices) if r == DEFAULT_GPU_RESOURCE]
            utils = [u for i in gpu_ids if (u := _util(telemetry.get(i))) is not None]
            items.append(
                {
                    "namespace": ns,
                    "name": name,
                    "phase": endpoint_phase(obj),
                    "readyReplicas": obj.status.readyReplicas,
                    "desiredReplicas": obj.status.desiredReplicas,
                    "requestsPerSecond": sum(s.rps for s in samples) / len(samples) if samples else 0.0,
                    "concurrency": samples[-1].concurrency if samples else 0.0,
                    "p99Seconds": p99,
                    "errorRatio": errors / requests if requests else 0.0,
                    "devices": devices,
                    "gpuUtilizationRatio": sum(utils) / len(utils) if utils else None,
                }
            )
        return {"kind": "EndpointTopList", "windowSeconds": window, "items": items}

    @router.get("/jobs")
    def job_list(namespace: str | None = None) -> dict[str, Any]:
        now = clock()
        items = []
        for obj in store.list("Job", namespace).items:
            assert isinstance(obj, Job)
            status = obj.status
            started = status.startTime.timestamp() if status.startTime else None
            ended = status.completionTime.timestamp() if status.completionTime else None
            created = obj.metadata.creationTimestamp
            items.append(
                {
                    "namespace": obj.metadata.namespace,
                    "name": obj.metadata.name,
                    "phase": status.phase,
                    "workers": obj.spec.workers,
                    "gpus": obj.spec.resources.gpus * obj.spec.workers,
                    "devices": list(status.devices),
                    "priorityClassName": obj.spec.priorityClassName,
                    "startTime": _iso(status.startTime),
                    "runtimeSeconds": (ended or now) - started if started is not None else None,
                    "waitingSeconds": now - created.timestamp()
                    if status.phase == "Pending" and created is not None
                    else None,
                    "queuePosition": status.queuePosition,
                }
            )
        return {"kind": "JobTopList", "items": items}

    @router.get("/gpus")
    def gpu_list() -> dict[str, Any]:
        held = device_owners(runtime, jobs, owners())
        telemetry = readings()
        items = []
        for resource, total in sorted(accelerator_totals(jobs).items()):
            for index in range(total):
                owner = held.get((resource, str(index)))
                reading = telemetry.get(str(index)) if resource == DEFAULT_GPU_RESOURCE else None
                items.append(
                    {
                        "resource": resource,
                        "device": str(index),
                        "allocated": owner is not None,
                        "ownerKind": owner.kind if owner else None,
                        "namespace": owner.namespace if owner else None,
                        "owner": owner.name if owner else None,
                        "since": _iso(owner.since) if owner else None,
                        "utilizationRatio": _util(reading),
                        "memoryUsedBytes": reading.memory_used_bytes if reading else None,
                        "memoryTotalBytes": reading.memory_total_bytes if reading else None,
                        "powerWatts": reading.power_watts if reading else None,
                    }
                )
        return {
            "kind": "GpuTopList",
            "time": datetime.fromtimestamp(clock(), UTC).isoformat(),
            "items": items,
        }

    return router


def _util(reading: GpuReading | None) -> float | None:
    return reading.utilization_ratio if reading is not None else None
