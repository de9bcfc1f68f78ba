"""API errors as the real kube-apiserver words them: HTTP status plus a ``Status`` body with a ``reason``.

Clients (the official client, kopf, kubectl, our ``KubeStore``) branch on the status code and the
``reason`` field, never on the message, so the reason strings here are the apiserver's own
(``NotFound``, ``AlreadyExists``, ``Conflict``, ``Invalid``, ``Expired``...). The error type is kmock's
``KubernetesError``; the server renders it with ``status_body`` (kmock's renderer adds a traceback).
"""

from __future__ import annotations

from typing import Any

from kmock import KubernetesError

__all__ = [
    "KubernetesError",
    "already_exists",
    "bad_request",
    "conflict",
    "expired_status",
    "forbidden",
    "invalid",
    "not_found",
    "status_body",
    "unsupported_media_type",
]


def _details(
    kind: str, name: str, group: str = "", causes: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    if causes:
        details["causes"] = causes
    return details


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, name: str, group: str = "") -> KubernetesError:
    return KubernetesError(
        status=404,
        reason="NotFound",
        message=f'{_qualified(plural, group)} "{name}" not found',
        details=_details(plural, name, group),
    )


def already_exists(plural: str, name: str, group: str = "") -> KubernetesError:
    return KubernetesError(
        status=409,
        reason="AlreadyExists",
        message=f'{_qualified(plural, group)} "{name}" already exists',
        details=_details(plural, name, group),
    )


def conflict(plural: str, name: str, group: str = "", why: str = "") -> KubernetesError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return KubernetesError(
        status=409,
        reason="Conflict",
        message=f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}',
        details=_details(plural, name, group),
    )


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> KubernetesError:
    """422 with one cause per bad field (``field`` is the dotted path, as kubectl prints it)."""
    summary = ", ".join(f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes)
    return KubernetesError(
        status=422,
        reason="Invalid",
        message=f'{kind}.{group or "core"} "{name}" is invalid: {summary}',
        details=_details(kind, name, group, causes),
    )


def bad_request(message: str) -> KubernetesError:
    return KubernetesError(status=400, reason="BadRequest", message=message, details={})


def forbidden(message: str) -> KubernetesError:
    return KubernetesError(status=403, reason="Forbidden", message=message, details={})


def unsupported_media_type(content_type: str) -> KubernetesError:
    return KubernetesError(
        status=415,
        reason="UnsupportedMediaType",
        message=f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json (got {content_type!r})",
        details={},
    )


def status_body(status: int, reason: str, message: str, details: Any = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": status,
        "reason": reason,
        "message": message,
        "details": details or {},
    }


def expired_status(since: int, oldest: int) -> dict[str, Any]:
    """The ``ERROR`` object a watch gets when it asks for history the server no longer keeps."""
    return status_body(410, "Expired", f"too old resource version: {since} ({oldest})")
