"""CRUD, status and watch for every kind at Kubernetes-style paths.

``/apis/pilothouse.dev/v1alpha1/namespaces/{ns}/{plural}[/{name}[/status]]`` with ``?dryRun=All``,
``?labelSelector=`` and ``?watch=true&resourceVersion=N`` behaving as they do on a Kubernetes API server.
Handlers are plain ``def``: the store is synchronous and FastAPI runs them in its thread pool.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, status
from fastapi.responses import StreamingResponse

from pilothouse.api.errors import FieldProblem, ManifestError
from pilothouse.api.meta import API_VERSION
from pilothouse.api.registry import KindInfo, by_plural, to_document
from pilothouse.api.selectors import parse_selector
from pilothouse.server.admission import admit
from pilothouse.server.services import ControlPlaneServices
from pilothouse.store.protocol import NotFound

PREFIX = f"/apis/{API_VERSION}"

router = APIRouter(prefix=PREFIX, tags=["resources"])


def services(request: Request) -> ControlPlaneServices:
    svc: ControlPlaneServices = request.app.state.services
    return svc


def kind_for(plural: str) -> KindInfo:
    try:
        return by_plural(plural)
    except KeyError:
        raise NotFound(f"the server has no resource type {plural!r}") from None


def _is_dry_run(dry_run: str | None) -> bool:
    if dry_run in (None, ""):
        return False
    if dry_run != "All":
        raise ManifestError([FieldProblem("dryRun", f"must be 'All', got {dry_run!r}")])
    return True


def _list_document(info: KindInfo, items: list[dict[str, Any]], resource_version: int) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": f"{info.kind}List",
        "metadata": {"resourceVersion": str(resource_version)},
        "items": items,
    }


def _watch_stream(
    svc: ControlPlaneServices, info: KindInfo, namespace: str | None, since: int, timeout: float
) -> Iterator[bytes]:
    for event in svc.store.watch(info.kind, since=since, timeout=timeout):
        if namespace is not None and event.object.metadata.namespace != namespace:
            continue
        yield json.dumps({"type": event.type, "object": to_document(event.object)}).encode() + b"\n"


def _list_or_watch(
    request: Request,
    plural: str,
    namespace: str | None,
    label_selector: str | None,
    watch: bool,
    resource_version: str | None,
    timeout_seconds: float,
) -> Any:
    svc = services(request)
    info = kind_for(plural)
    if watch:
        since = int(resource_version) if resource_version else svc.store.current_version()
        return StreamingResponse(
            _watch_stream(svc, info, namespace, since, timeout_seconds), media_type="application/x-ndjson"
        )
    result = svc.store.list(info.kind, namespace, parse_selector(label_selector))
    return _list_document(info, [to_document(o) for o in result.items], result.resource_version)


@router.get("/{plural}")
def list_all_namespaces(
    request: Request,
    plural: str,
    labelSelector: str | None = None,
    watch: bool = False,
    resourceVersion: str | None = None,
    timeoutSeconds: Annotated[float, Query(ge=0, le=3600)] = 300,
) -> Any:
    return _list_or_watch(request, plural, None, labelSelector, watch, resourceVersion, timeoutSeconds)


@router.get("/namespaces/{namespace}/{plural}")
def list_namespaced(
    request: Request,
    namespace: str,
    plural: str,
    labelSelector: str | None = None,
    watch: bool = False,
    resourceVersion: str | None = None,
    timeoutSeconds: Annotated[float, Query(ge=0, le=3600)] = 300,
) -> Any:
    return _list_or_watch(request, plural, namespace, labelSelector, watch, resourceVersion, timeoutSeconds)


def _scoped(plural: str, namespace: str) -> KindInfo:
    """The kind for a path, checking that cluster-scoped kinds use cluster paths and vice versa."""
    info = kind_for(plural)
    if info.namespaced != bool(namespace):
        where = "under /namespaces/{ns}/" if info.namespaced else "without a namespace"
        raise NotFound(f"{info.kind} is {'namespaced' if info.namespaced else 'cluster-scoped'}: use {where}")
    return info


@router.post("/{plural}", status_code=status.HTTP_201_CREATED)
def create_cluster_scoped(
    request: Request, plural: str, body: Annotated[Any, Body()], dryRun: str | None = None
) -> dict[str, Any]:
    return create(request, "", plural, body, dryRun)


@router.get("/{plural}/{name}")
def get_cluster_scoped(request: Request, plural: str, name: str) -> dict[str, Any]:
    return get(request, "", plural, name)


@router.put("/{plural}/{name}")
def replace_cluster_scoped(
    request: Request, plural: str, name: str, body: Annotated[Any, Body()], dryRun: str | None = None
) -> dict[str, Any]:
    return replace(request, "", plural, name, body, dryRun)


@router.put("/{plural}/{name}/status")
def replace_status_cluster_scoped(
    request: Request, plural: str, name: str, body: Annotated[Any, Body()]
) -> dict[str, Any]:
    return replace_status(request, "", plural, name, body)


@router.delete("/{plural}/{name}")
def delete_cluster_scoped(request: Request, plural: str, name: str) -> dict[str, Any]:
    return delete(request, "", plural, name)


@router.post("/namespaces/{namespace}/{plural}", status_code=status.HTTP_201_CREATED)
def create(
    request: Request, namespace: str, plural: str, body: Annotated[Any, Body()], dryRun: str | None = None
) -> dict[str, Any]:
    svc = services(request)
    obj = admit(body, _scoped(plural, namespace), namespace, svc.runtime)
    return to_document(svc.store.create(obj, dry_run=_is_dry_run(dryRun)))


@router.get("/namespaces/{namespace}/{plural}/{name}")
def get(request: Request, namespace: str, plural: str, name: str) -> dict[str, Any]:
    return to_document(services(request).store.get(_scoped(plural, namespace).kind, namespace, name))


@router.put("/namespaces/{namespace}/{plural}/{name}")
def replace(
    request: Request,
    namespace: str,
    plural: str,
    name: str,
    body: Annotated[Any, Body()],
    dryRun: str | None = None,
) -> dict[str, Any]:
    svc = services(request)
    obj = admit(body, _scoped(plural, namespace), namespace, svc.runtime, name)
    return to_document(svc.store.update(obj, dry_run=_is_dry_run(dryRun)))


@router.put("/namespaces/{namespace}/{plural}/{name}/status")
def replace_status(
    request: Request, namespace: str, plural: str, name: str, body: Annotated[Any, Body()]
) -> dict[str, Any]:
    svc = services(request)
    info = _scoped(plural, namespace)
    current = svc.store.get(info.kind, namespace, name)
    if not isinstance(body, dict) or "status" not in body:
        raise ManifestError([FieldProblem("status", "required field is missing")])
    obj = info.model.model_validate({**to_document(current), "status": body["status"]})
    obj.metadata.resourceVersion = (body.get("metadata") or {}).get("resourceVersion")
    return to_document(svc.store.update_status(obj))


@router.delete("/namespaces/{namespace}/{plural}/{name}")
def delete(request: Request, namespace: str, plural: str, name: str) -> dict[str, Any]:
    svc = services(request)
    return to_document(svc.store.delete(_scoped(plural, namespace).kind, namespace, name))
