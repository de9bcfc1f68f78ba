"""API errors -> our typed store errors, by HTTP status and the Status ``reason``; never by message text.

Kubernetes answers 409 for two different things, told apart only by ``reason``: ``AlreadyExists`` (a
create hit an existing name) and ``Conflict`` (a stale resourceVersion or uid precondition). A 422
``Invalid`` means the CRD's schema refused the object; it becomes a ``ManifestError`` naming each field,
as our own validation does.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from pilothouse.api.errors import FieldProblem, ManifestError
from pilothouse.store.protocol import AlreadyExists, Conflict, Expired, NotFound, StoreError


def status_of(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def translate(exc: ApiException, what: str) -> Exception:
    """The store error for an API error; ``what`` names the object for the message."""
    status = status_of(exc)
    reason = status.get("reason", "")
    message = f"{what}: {status.get('message') or exc.reason or 'error'}"
    code = exc.status or status.get("code")
    if code == 404:
        return NotFound(message)
    if code == 409:
        return AlreadyExists(message) if reason == "AlreadyExists" else Conflict(message)
    if code == 410 or reason in {"Expired", "Gone"}:
        return Expired(message)
    if code == 422 and reason == "Invalid":
        causes = (status.get("details") or {}).get("causes") or []
        problems = [FieldProblem(str(c.get("field", "")), str(c.get("message", ""))) for c in causes]
        return ManifestError(problems or [FieldProblem("", message)])
    error = StoreError(message)
    error.status_code = int(code or 500)
    return error
