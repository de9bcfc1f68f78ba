"""Events of a namespace, filtered by the object they are about: the timeline ``describe`` shows.

Registered before the resource routes so ``/namespaces/{ns}/events`` is not taken for a kind's plural.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from pilothouse.server.resources import PREFIX, services

router = APIRouter(prefix=PREFIX, tags=["events"])


@router.get("/namespaces/{namespace}/events")
def events(
    request: Request, namespace: str, kind: str | None = None, name: str | None = None
) -> dict[str, Any]:
    svc = services(request)
    items = [
        e.model_dump(mode="json")
        for e in svc.store.list_events(namespace=namespace)
        if (kind is None or e.involvedObject.kind == kind) and (name is None or e.involvedObject.name == name)
    ]
    return {"apiVersion": "v1", "kind": "EventList", "items": items}
