"""The pure half of the ModelEndpoint reconciler: from an endpoint, its replicas and its traffic to a plan.

``rollout.plan_rollout`` decides replicas and traffic per revision; this module turns that into
workloads for the runtime (each revision with *its own* template, from the spec history), routes for
the gateway, the status the user sees, and the events that explain it.

Conditions: ``Ready`` is True when the rollout is complete and the serving revision has its desired
replicas ready (or is scaled to zero on purpose) — what ``apply --wait`` waits for. ``Available`` is
True whenever some ready replica takes traffic, so a canary in progress or a failed update that kept
the old revision reads "available, not ready".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pilothouse.api.meta import Condition, get_condition, set_condition
from pilothouse.api.modelendpoint import ModelEndpoint, ModelEndpointSpec, ModelEndpointStatus
from pilothouse.controllers.rollout import FAILURE_REASONS, plan_rollout
from pilothouse.controllers.routes import RevisionStats
from pilothouse.runtime.protocol import OwnerRef, ReplicaState, WorkloadSpec

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class PlannedEvent:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class RevisionRoute:
    revision: int
    weight: int
    upstreams: tuple[str, ...]
    concurrency_limit: int | None


@dataclass
class Plan:
    workloads: list[WorkloadSpec]
    """Revisions that should run, each with its replica count (> 0)."""
    retire_revisions: list[int]
    routes: list[RevisionRoute]
    hold_when_empty: bool
    """Hold requests while no replica is ready (scale-from-zero) instead of answering 503."""
    status: ModelEndpointStatus
    events: list[PlannedEvent] = field(default_factory=list)
    requeue_after: float | None = None


def floor_replicas(endpoint: ModelEndpoint) -> int:
    """Replicas to run when no autoscaler decides: the minimum, but at least one."""
    return max(endpoint.spec.autoscaling.minReplicas, 1)


def endpoint_url(gateway_url: str, endpoint: ModelEndpoint) -> str:
    return f"{gateway_url.rstrip('/')}/{endpoint.metadata.namespace}/{endpoint.metadata.name}"


def workload(endpoint: ModelEndpoint, spec: ModelEndpointSpec, revision: int, replicas: int) -> WorkloadSpec:
    meta = endpoint.metadata
    assert meta.uid is not None, "stored objects have a uid"
    env = dict(spec.env)
    if spec.batching is not None:
        env["PILOTHOUSE_MAX_BATCH_SIZE"] = str(spec.batching.maxBatchSize)
        env["PILOTHOUSE_MAX_BATCH_LATENCY_MS"] = f"{spec.batching.maxLatencyMs:g}"
    return WorkloadSpec(
        owner=OwnerRef(endpoint.kind, meta.namespace, meta.name, meta.uid),
        revision=revision,
        replicas=replicas,
        model=spec.model,
        resources=spec.resources,
        model_name=spec.model.name or meta.name,
        env=env,
    )


def _ready_condition(
    endpoint: ModelEndpoint, status: ModelEndpointStatus, observed: list[ReplicaState], desired: int
) -> Condition:
    generation = endpoint.metadata.generation
    latest = status.latestRevision
    stable_ready = sum(1 for r in observed if r.ready and r.revision == status.stableRevision)
    failing = next(
        (r for r in observed if r.revision == latest and not r.ready and r.reason in FAILURE_REASONS), None
    )
    phase = status.rolloutPhase
    if phase == "Completed" and desired == 0:
        return Condition(
            type="Ready",
            status="True",
            reason="ScaledToZero",
            message="no traffic: scaled to zero; the first request starts a replica",
            observedGeneration=generation,
        )
    if phase == "Completed":
        return Condition(
            type="Ready",
            status="True",
            reason="ReplicasReady",
            message=f"{stable_ready}/{desired} replicas of revision {latest} ready",
            observedGeneration=generation,
        )
    if phase == "RolledBack":
        last = next((c for c in reversed(endpoint.status.conditions) if c.type == "Ready"), None)
        message = f"revision {latest} was rolled back; revision {status.stableRevision} serves"
        if last is not None and last.reason == "RolledBack":
            message = last.message
        return Condition(
            type="Ready", status="False", reason="RolledBack", message=message, observedGeneration=generation
        )
    if failing is not None:
        serving = f"; revision {status.stableRevision} keeps serving" if status.stableRevision else ""
        return Condition(
            type="Ready",
            status="False",
            reason=failing.reason,
            message=f"{failing.message or failing.reason}{serving}",
            observedGeneration=generation,
        )
    latest_ready = sum(1 for r in observed if r.ready and r.revision == latest)
    reason = "RolloutInProgress" if status.stableRevision not in (None, latest) else "ReplicasStarting"
    serving = f"; revision {status.stableRevision} serves" if reason == "RolloutInProgress" else ""
    return Condition(
        type="Ready",
        status="False",
        reason=reason,
        message=f"{latest_ready}/{desired} replicas of revision {latest} ready{serving}",
        observedGeneration=generation,
    )


def plan(
    endpoint: ModelEndpoint,
    observed: list[ReplicaState],
    gateway_url: str,
    *,
    desired: int | None = None,
    now: datetime,
    templates: Mapping[int, ModelEndpointSpec] | None = None,
    stats: Mapping[int, RevisionStats] | None = None,
) -> Plan:
    """``desired``: the autoscaler's replica count (default: the floor). ``templates``: specs of older
    revisions still running, by revision number (the latest uses the current spec)."""
    want = floor_replicas(endpoint) if desired is None else desired
    rollout = plan_rollout(endpoint, observed, want, now, stats or {})
    status = rollout.status
    latest = status.latestRevision
    assert latest is not None
    status.observedGeneration = endpoint.metadata.generation
    status.url = endpoint_url(gateway_url, endpoint)
    status.desiredReplicas = want
    status.replicas = len(observed)
    weighted = {t.revision for t in rollout.targets if t.weight > 0}
    status.readyReplicas = sum(1 for r in observed if r.ready and r.revision in weighted)
    status.revision = status.stableRevision

    previous_ready = get_condition(endpoint.status.conditions, "Ready")
    ready = _ready_condition(endpoint, status, observed, want)
    if ready.reason == "RolledBack" and rollout.events:
        rolled = next((e for e in rollout.events if e.reason == "RolledBack"), None)
        if rolled is not None:
            ready = ready.model_copy(update={"message": rolled.message})
    available = status.readyReplicas > 0 or ready.reason == "ScaledToZero"
    status.conditions = set_condition(status.conditions, ready)
    status.conditions = set_condition(
        status.conditions,
        Condition(
            type="Available",
            status="True" if available else "False",
            reason="Serving" if available else "NoReadyReplica",
            message=f"{status.readyReplicas} ready replica(s) take traffic",
            observedGeneration=endpoint.metadata.generation,
        ),
    )

    events = [
        PlannedEvent("Warning" if e.type == "Warning" else "Normal", e.reason, e.message)
        for e in rollout.events
    ]
    changed = previous_ready is None or (previous_ready.status, previous_ready.reason) != (
        ready.status,
        ready.reason,
    )
    if changed and ready.status == "False" and ready.reason in FAILURE_REASONS:
        events.append(PlannedEvent("Warning", ready.reason, ready.message))

    specs = dict(templates or {})
    specs[latest] = endpoint.spec
    workloads, retire, routes = [], [], []
    for target in rollout.targets:
        if target.replicas == 0 and target.weight == 0:
            retire.append(target.revision)
        elif target.revision in specs:  # including a revision scaled to zero (it keeps its traffic share)
            workloads.append(workload(endpoint, specs[target.revision], target.revision, target.replicas))
        upstreams = tuple(
            sorted(r.url for r in observed if r.ready and r.url and r.revision == target.revision)
        )
        if target.weight > 0 or upstreams:
            routes.append(
                RevisionRoute(
                    target.revision, target.weight, upstreams, endpoint.spec.autoscaling.containerConcurrency
                )
            )
    return Plan(
        workloads=workloads,
        retire_revisions=retire,
        routes=routes,
        hold_when_empty=endpoint.spec.autoscaling.minReplicas == 0 or status.readyReplicas == 0,
        status=status,
        events=events,
        requeue_after=rollout.requeue_after,
    )
