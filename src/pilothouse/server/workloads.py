"""Read-only views of what the runtime is doing for an object: its replicas and their logs.

These are the only routes that reach past the store into the runtime, because logs and live replica
state are observations, not desired state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from pilothouse.server.resources import PREFIX, kind_for, services
from pilothouse.server.services import ControlPlaneServices
from pilothouse.store.protocol import NotFound

router = APIRouter(prefix=PREFIX, tags=["workloads"])


def _tail(path: Path, lines: int | None) -> list[str]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        if lines is None:
            return handle.readlines()
        return list(deque(handle, maxlen=lines))


@router.get("/namespaces/{namespace}/{plural}/{name}/replicas")
def replicas(request: Request, namespace: str, plural: str, name: str) -> dict[str, Any]:
    svc = services(request)
    obj = svc.store.get(kind_for(plural).kind, namespace, name)
    assert obj.metadata.uid is not None
    return {"items": [asdict(r) for r in svc.runtime.observe(obj.metadata.uid)]}


def _job_logs(svc: ControlPlaneServices, uid: str, worker: str | None, tail: int | None) -> StreamingResponse:
    if svc.jobs is None:
        raise NotFound("this control plane runs no jobs")
    index = None
    if worker is not None:
        index = int(worker.removeprefix("worker-")) if worker.removeprefix("worker-").isdigit() else -1
    files = svc.jobs.job_log_files(uid, index)
    prefix = len(files) > 1

    def snapshot() -> Iterator[bytes]:
        for worker_id, path in files:
            for line in _tail(path, tail):
                yield (f"[{worker_id}] {line}" if prefix else line).encode()

    return StreamingResponse(snapshot(), media_type="text/plain; charset=utf-8")


@router.get("/namespaces/{namespace}/{plural}/{name}/history")
def history(request: Request, namespace: str, plural: str, name: str) -> dict[str, Any]:
    """The object's spec at every generation (``rollout history`` and ``rollout undo`` read it)."""
    svc = services(request)
    obj = svc.store.get(kind_for(plural).kind, namespace, name)
    assert obj.metadata.uid is not None
    items = [
        {"generation": r.generation, "created": r.created.isoformat(), "spec": r.spec}
        for r in svc.store.history(obj.metadata.uid)
    ]
    return {"items": items}


@router.get("/replicas")
def replicas_by_owner(request: Request, ownerUID: str) -> dict[str, Any]:
    """Replicas of an owner uid, even after the owner is gone: ``delete --wait`` watches them drain."""
    return {"items": [asdict(r) for r in services(request).runtime.observe(ownerUID)]}


@router.get("/namespaces/{namespace}/{plural}/{name}/log")
def logs(
    request: Request,
    namespace: str,
    plural: str,
    name: str,
    replica: str | None = None,
    follow: bool = False,
    tailLines: Annotated[int | None, Query(ge=0)] = None,
) -> StreamingResponse:
    svc = services(request)
    info = kind_for(plural)
    obj = svc.store.get(info.kind, namespace, name)
    uid = obj.metadata.uid
    assert uid is not None
    if info.kind == "Job":
        return _job_logs(svc, uid, replica, tailLines)
    files = svc.runtime.log_files(uid, replica)
    if replica is not None and not files:
        raise NotFound(f"{name} has no replica {replica!r}")
    prefix = len(files) > 1

    def snapshot() -> Iterator[bytes]:
        for replica_id, path in files:
            for line in _tail(path, tailLines):
                yield (f"[{replica_id}] {line}" if prefix else line).encode()

    def follow_stream() -> Iterator[bytes]:
        for line in svc.runtime.follow_logs(uid, replica):
            yield line.encode()

    return StreamingResponse(
        follow_stream() if follow else snapshot(), media_type="text/plain; charset=utf-8"
    )
