"""Replica states read from a revision's Deployment: what the endpoint controller sees on Kubernetes.

Kubernetes does not tell a controller *which* pod is which replica, only counts, so replicas are
synthesised from the Deployment's ``spec.replicas`` and ``status.readyReplicas``: ids
``<deployment>-<index>``, the first ``readyReplicas`` ones Ready, the rest Starting (or Failed once
the Deployment's ``Progressing`` condition is False, e.g. ``ProgressDeadlineExceeded``).

Only one replica per revision carries a URL, the revision Service's cluster DNS name: on Kubernetes
the gateway routes to the Service and kube-proxy spreads requests over the ready pods. The URL sits on
the ready replica whose id sorts last, because the controller drains the replicas whose ids sort first:
scaling a revision down never takes its Service out of the route, and retiring a revision does. Draining
a replica by id is therefore approximate here: ``stop_replicas`` lowers ``spec.replicas`` and the
ReplicaSet controller picks the pods; the pods' readiness probe and termination grace period finish
their requests.
"""

from __future__ import annotations

from typing import Any

from pilothouse.runtime.kubernetes.builders.endpoint import SERVICE_PORT
from pilothouse.runtime.kubernetes.builders.names import REVISION_LABEL
from pilothouse.runtime.protocol import ReplicaPhase, ReplicaState


def owner_uid(obj: dict[str, Any]) -> str | None:
    """The uid of the object's controller owner reference (ours), if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid"):
            return str(ref["uid"])
    return None


def service_url(name: str, namespace: str) -> str:
    return f"http://{name}.{namespace}.svc.cluster.local:{SERVICE_PORT}"


def replica_id(deployment: str, index: int) -> str:
    return f"{deployment}-{index:03d}"


def revision_of(obj: dict[str, Any]) -> int | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _progress_failure(status: dict[str, Any]) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("status") == "False":
            return dict(condition)
    return None


def accelerator_devices(deployment: dict[str, Any]) -> tuple[str, ...]:
    """One entry per accelerator a replica requests (ids are not visible on Kubernetes, counts are)."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    devices: list[str] = []
    for container in containers or []:
        for resource, amount in ((container.get("resources") or {}).get("requests") or {}).items():
            if "/" in resource:
                devices += [resource] * int(str(amount))
    return tuple(devices)


def replica_states(deployment: dict[str, Any], uid: str) -> list[ReplicaState]:
    meta = deployment["metadata"]
    revision = revision_of(deployment)
    if revision is None:
        return []
    name, namespace = meta["name"], meta["namespace"]
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    desired = int(spec.get("replicas", 1))
    current_generation = status.get("observedGeneration") == meta.get("generation")
    ready = min(int(status.get("readyReplicas") or 0), desired) if current_generation else 0
    failure = _progress_failure(status)
    devices = accelerator_devices(deployment)
    terminating = bool(meta.get("deletionTimestamp"))
    states: list[ReplicaState] = []
    for index in range(desired):
        phase: ReplicaPhase
        reason, message = "", ""
        if terminating:
            phase = "Terminating"
        elif index < ready:
            phase = "Ready"
        elif failure is not None:
            phase, reason, message = "Failed", str(failure.get("reason", "")), str(failure.get("message", ""))
        else:
            phase = "Starting"
        url = service_url(name, namespace) if phase == "Ready" and index == ready - 1 else None
        states.append(
            ReplicaState(
                id=replica_id(name, index),
                owner_uid=uid,
                revision=revision,
                phase=phase,
                url=url,
                devices=devices,
                reason=reason,
                message=message,
            )
        )
    return states
