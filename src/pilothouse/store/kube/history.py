"""Spec history as ControllerRevisions, the way Deployments and StatefulSets keep theirs.

Each spec generation of an object is one ``apps/v1`` ControllerRevision: ``revision`` is the generation,
``data`` holds ``{"spec": ...}``, and labels carry the owner's uid, kind and name so ``history(uid)`` is
one labelled list. The owner reference (``controller: true``) lets the cluster's garbage collector
delete the revisions with their object; the store also deletes them itself on ``delete``, because on a
real cluster the collector acts later and ``history`` must not show a deleted object's revisions.

Revision names are deterministic (``<kind>.<name>.<uid prefix>.g<generation>``), so writing one twice is
an ``AlreadyExists`` that is ignored: concurrent writers cannot duplicate a generation. Revisions of
cluster-scoped objects (Teams) live in the store's system namespace.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubernetes import client
from pilothouse.api.meta import API_VERSION
from pilothouse.api.registry import Resource
from pilothouse.store.protocol import SpecRevision

OWNER_UID = "pilothouse.dev/owner-uid"
OWNER_KIND = "pilothouse.dev/owner-kind"
OWNER_NAME = "pilothouse.dev/owner-name"


def revision_name(obj: Resource) -> str:
    uid = obj.metadata.uid or ""
    return f"{obj.kind.lower()}.{obj.metadata.name}.{uid[:8]}.g{obj.metadata.generation}"


def write_revision(apps: client.AppsV1Api, obj: Resource, namespace: str) -> None:
    """Record ``obj``'s current generation; a revision that already exists is left as it is."""
    meta = obj.metadata
    body: Any = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name(obj),
            "namespace": namespace,
            "labels": {OWNER_UID: meta.uid, OWNER_KIND: obj.kind, OWNER_NAME: meta.name},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": obj.kind,
                    "name": meta.name,
                    "uid": meta.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "revision": meta.generation,
        "data": {"spec": obj.model_dump(mode="json", exclude_none=True)["spec"]},
    }
    try:
        apps.create_namespaced_controller_revision(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise


def read_history(apps: client.AppsV1Api, uid: str) -> list[SpecRevision]:
    listing = apps.list_controller_revision_for_all_namespaces(label_selector=f"{OWNER_UID}={uid}")
    revisions = [_to_revision(uid, item) for item in listing.items]
    return sorted(revisions, key=lambda r: r.generation)


def delete_history(apps: client.AppsV1Api, uid: str) -> None:
    listing = apps.list_controller_revision_for_all_namespaces(label_selector=f"{OWNER_UID}={uid}")
    for item in listing.items:
        meta: Any = item.metadata
        try:
            apps.delete_namespaced_controller_revision(str(meta.name), str(meta.namespace))
        except ApiException as exc:
            if exc.status != 404:
                raise


def _to_revision(uid: str, item: Any) -> SpecRevision:
    data = item.data if isinstance(item.data, dict) else {}
    created = item.metadata.creation_timestamp or datetime.now(UTC)
    return SpecRevision(
        uid=uid, generation=int(item.revision), spec=dict(data.get("spec") or {}), created=created
    )
