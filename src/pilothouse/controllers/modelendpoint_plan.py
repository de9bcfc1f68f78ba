"""The pure half of the ModelEndpoint reconciler: from an endpoint and observed replicas to a plan.

Revisions: each spec generation is a revision. The newest revision is scaled to the desired count; older
revisions keep serving until the newest has all its replicas ready, and only then are retired — so a
bad new model (it fails to load) never takes the endpoint down, and the status says why it is stuck.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pilothouse.api.meta import Condition, get_condition, set_condition
from pilothouse.api.modelendpoint import ModelEndpoint, ModelEndpointStatus
from pilothouse.runtime.protocol import OwnerRef, ReplicaState, WorkloadSpec

EventType = Literal["Normal", "Warning"]

FAILURE_REASONS = ("ModelLoadFailed", "CrashLoopBackOff", "Error", "InsufficientAccelerators", "NotSupported")


@dataclass(frozen=True)
class PlannedEvent:
    type: EventType
    reason: str
    message: str


@dataclass
class Plan:
    workload: WorkloadSpec
    retire_revisions: list[int]
    status: ModelEndpointStatus
    upstreams: list[str]
    events: list[PlannedEvent] = field(default_factory=list)
    requeue_after: float | None = None


def desired_replicas(endpoint: ModelEndpoint) -> int:
    """Replicas the newest revision should have. The autoscaler will replace this; until then the floor."""
    return max(endpoint.spec.autoscaling.minReplicas, 1)


def endpoint_url(gateway_url: str, endpoint: ModelEndpoint) -> str:
    return f"{gateway_url.rstrip('/')}/{endpoint.metadata.namespace}/{endpoint.metadata.name}"


def _workload(endpoint: ModelEndpoint, replicas: int) -> WorkloadSpec:
    meta = endpoint.metadata
    assert meta.uid is not None and meta.generation is not None, "stored objects have uid and generation"
    return WorkloadSpec(
        owner=OwnerRef(endpoint.kind, meta.namespace, meta.name, meta.uid),
        revision=meta.generation,
        replicas=replicas,
        model=endpoint.spec.model,
        resources=endpoint.spec.resources,
        model_name=endpoint.spec.model.name or meta.name,
    )


def _failure(replicas: list[ReplicaState]) -> ReplicaState | None:
    for reason in FAILURE_REASONS:
        for replica in replicas:
            if replica.reason == reason and not replica.ready:
                return replica
    return None


def plan(endpoint: ModelEndpoint, observed: list[ReplicaState], gateway_url: str) -> Plan:
    generation = endpoint.metadata.generation or 1
    desired = desired_replicas(endpoint)
    newest = [r for r in observed if r.revision == generation]
    older = [r for r in observed if r.revision != generation]
    newest_ready = sum(r.ready for r in newest)
    rolled_out = newest_ready >= desired
    serving = [r for r in observed if r.ready and r.url]
    old_ready_revisions = sorted({r.revision for r in older if r.ready})

    status = endpoint.status.model_copy(deep=True)
    status.observedGeneration = generation
    status.url = endpoint_url(gateway_url, endpoint)
    status.desiredReplicas = desired
    status.replicas = len(observed)
    status.readyReplicas = len(serving)
    if rolled_out:
        status.revision = generation
    elif old_ready_revisions:
        status.revision = old_ready_revisions[-1]

    events: list[PlannedEvent] = []
    previous = get_condition(endpoint.status.conditions, "Ready")
    if endpoint.status.observedGeneration != generation:
        verb = "created" if generation == 1 else "updated"
        events.append(PlannedEvent("Normal", "RevisionCreated", f"spec {verb}: revision {generation}"))

    failure = _failure(newest)
    still_serving = f"; revision {old_ready_revisions[-1]} keeps serving" if old_ready_revisions else ""
    if rolled_out:
        condition = Condition(
            type="Ready",
            status="True",
            reason="ReplicasReady",
            message=f"{newest_ready}/{desired} replicas of revision {generation} ready",
            observedGeneration=generation,
        )
    elif failure is not None:
        condition = Condition(
            type="Ready",
            status="False",
            reason=failure.reason,
            message=f"{failure.message or failure.reason}{still_serving}",
            observedGeneration=generation,
        )
    else:
        condition = Condition(
            type="Ready",
            status="False",
            reason="ReplicasStarting",
            message=f"{newest_ready}/{desired} replicas of revision {generation} ready{still_serving}",
            observedGeneration=generation,
        )
    status.conditions = set_condition(status.conditions, condition)

    changed = previous is None or (previous.status, previous.reason) != (condition.status, condition.reason)
    if changed and condition.status == "True":
        events.append(PlannedEvent("Normal", "RevisionReady", condition.message))
    elif changed and failure is not None:
        events.append(PlannedEvent("Warning", condition.reason, condition.message))

    retire = sorted({r.revision for r in older}) if rolled_out else []
    return Plan(
        workload=_workload(endpoint, desired),
        retire_revisions=retire,
        status=status,
        upstreams=sorted(r.url for r in serving if r.url),
        events=events,
        requeue_after=None if rolled_out else 5.0,
    )
