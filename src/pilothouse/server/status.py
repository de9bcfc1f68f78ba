"""Errors as Kubernetes ``Status`` objects, so clients (ours and kubectl-minded humans) read one shape.

Every failure carries a machine-readable ``reason`` (``NotFound``, ``AlreadyExists``, ``Conflict``,
``Invalid``) and, for validation, one ``cause`` per bad field — the CLI prints those verbatim.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from pilothouse.api.errors import ManifestError
from pilothouse.store.protocol import AlreadyExists, Conflict, Expired, NotFound, StoreError

_REASONS: dict[type[StoreError], str] = {
    NotFound: "NotFound",
    AlreadyExists: "AlreadyExists",
    Conflict: "Conflict",
    Expired: "Expired",
}


def status_body(
    code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if causes:
        body["details"] = {"causes": causes}
    return body


def status_response(
    code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None
) -> JSONResponse:
    return JSONResponse(status_body(code, reason, message, causes), status_code=code)


async def handle_store_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreError)
    return status_response(exc.status_code, _REASONS.get(type(exc), "InternalError"), str(exc))


async def handle_manifest_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ManifestError)
    causes = [{"field": p.path, "message": p.message} for p in exc.problems]
    return status_response(422, "Invalid", str(exc), causes)
