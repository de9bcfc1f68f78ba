"""Typed resources <-> custom-resource documents, and label selectors -> ``labelSelector`` strings.

Our models forbid unknown fields, but objects read from a cluster carry metadata the API server owns
and our manifests never mention (``managedFields``, ``finalizers``, ``ownerReferences``...), so reading
keeps only the metadata our models know. Cluster-scoped kinds (Team) have no namespace on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse.api.meta import GROUP, VERSION
from pilothouse.api.registry import KINDS, KindInfo, Resource
from pilothouse.api.selectors import Requirement

_KNOWN_META = (
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
)


@dataclass(frozen=True)
class CustomResource:
    """Where a kind lives in the API: ``/apis/{group}/{version}[/namespaces/{ns}]/{plural}``."""

    info: KindInfo
    group: str = GROUP
    version: str = VERSION

    @property
    def plural(self) -> str:
        return self.info.plural

    @property
    def namespaced(self) -> bool:
        return self.info.namespaced


def resource_of(kind: str) -> CustomResource | None:
    info = KINDS.get(kind)
    return None if info is None else CustomResource(info)


def to_document(obj: Resource, *, with_status: bool = True) -> dict[str, Any]:
    doc = obj.model_dump(mode="json", exclude_none=True)
    if not KINDS[obj.kind].namespaced:
        doc["metadata"].pop("namespace", None)
    if not with_status:
        doc.pop("status", None)
    return doc


def from_document(kind: str, doc: dict[str, Any]) -> Resource:
    info = KINDS[kind]
    meta = {k: v for k, v in (doc.get("metadata") or {}).items() if k in _KNOWN_META}
    if not info.namespaced:
        meta.pop("namespace", None)
    clean = {k: v for k, v in doc.items() if k in {"spec", "status"}}
    clean.update(apiVersion=f"{GROUP}/{VERSION}", kind=kind, metadata=meta)
    if clean.get("status") is None:
        clean.pop("status", None)
    return info.model.model_validate(clean)


def render_selector(selector: Sequence[Requirement]) -> str | None:
    """The Kubernetes ``labelSelector`` syntax for our parsed requirements."""
    parts: list[str] = []
    for req in selector:
        if req.op == "=":
            parts.append(f"{req.key}={req.values[0]}")
        elif req.op == "!=":
            parts.append(f"{req.key}!={req.values[0]}")
        elif req.op in {"in", "notin"}:
            parts.append(f"{req.key} {req.op} ({','.join(req.values)})")
        elif req.op == "exists":
            parts.append(req.key)
        else:
            parts.append(f"!{req.key}")
    return ",".join(parts) or None
