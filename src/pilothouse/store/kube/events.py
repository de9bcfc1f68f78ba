"""Our events as core/v1 Events, so ``kubectl describe`` and ``kubectl get events`` show them too.

Folding repeats the way the Kubernetes event recorder does: the Event's name is derived from what makes
two events "the same" (object kind, namespace, name and uid, reason, message), so a repeat is a read and
a ``PUT`` of ``count + 1`` and a new ``lastTimestamp`` with the read resourceVersion, retried on a
conflict: concurrent recorders never lose a count. Events of cluster-scoped objects (Teams) go to the
store's system namespace, since an Event must live in a namespace.

Event timestamps have one-second precision on the wire, so events are listed by ``lastTimestamp`` and
then by resourceVersion (a later write has a higher one) to keep "last occurrence" order within a second.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from kubernetes import client
from pilothouse.api.event import Event, ObjectReference
from pilothouse.api.meta import API_VERSION
from pilothouse.store.protocol import Conflict

SOURCE = "pilothouse"
RETRIES = 20


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_name(ref: ObjectReference, reason: str, message: str) -> str:
    key = "\x00".join([ref.kind, ref.namespace, ref.name, ref.uid or "", reason, message])
    return f"{ref.name}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def record(
    core: client.CoreV1Api,
    namespace: str,
    ref: ObjectReference,
    type_: Literal["Normal", "Warning"],
    reason: str,
    message: str,
) -> None:
    name = event_name(ref, reason, message)
    involved: dict[str, Any] = {"apiVersion": API_VERSION, "kind": ref.kind, "name": ref.name}
    if ref.namespace:
        involved["namespace"] = ref.namespace
    if ref.uid:
        involved["uid"] = ref.uid
    for _ in range(RETRIES):
        try:
            current = core.read_namespaced_event(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            now = _now()
            body: Any = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": involved,
                "type": type_,
                "reason": reason,
                "message": message,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": SOURCE},
                "reportingComponent": SOURCE,
            }
            try:
                core.create_namespaced_event(namespace, body)
                return
            except ApiException as exc2:
                if exc2.status != 409:
                    raise
                continue
        current.count = (current.count or 1) + 1
        current.last_timestamp = datetime.now(UTC).replace(microsecond=0)
        current.type = type_
        try:
            core.replace_namespaced_event(name, namespace, current)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise Conflict(f"event {namespace}/{name}: still conflicting after {RETRIES} attempts")


def to_event(item: Any) -> Event:
    involved = item.involved_object
    return Event(
        involvedObject=ObjectReference(
            kind=involved.kind,
            namespace=involved.namespace or "",
            name=involved.name,
            uid=involved.uid or None,
        ),
        type="Warning" if item.type == "Warning" else "Normal",
        reason=item.reason or "",
        message=item.message or "",
        count=item.count or 1,
        firstTimestamp=item.first_timestamp,
        lastTimestamp=item.last_timestamp,
        source=(item.source.component if item.source and item.source.component else SOURCE),
    )


def ours(item: Any) -> bool:
    return bool(item.involved_object and item.involved_object.api_version == API_VERSION)


def order_key(item: Any) -> tuple[datetime, int]:
    rv = item.metadata.resource_version or "0"
    return (item.last_timestamp, int(rv) if rv.isdigit() else 0)
