"""How a typed object is split into stored columns and put back together.

The store owns uid, resourceVersion, generation and creationTimestamp, so they live in columns and are
stripped from the stored JSON; whatever a client sent for them is ignored. Status is stored apart from
the rest because the two are written by different parties (``update`` vs ``update_status``). Every object
the store hands out is rebuilt from the columns, so it always carries the server-set metadata.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pilothouse.api.registry import KINDS, Resource

SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp")


def split(obj: Resource) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(body, status)``: the JSON document without status and without the server-set metadata."""
    body = obj.model_dump(mode="json")
    status: dict[str, Any] = body.pop("status", None) or {}
    for field in SERVER_FIELDS:
        body["metadata"].pop(field, None)
    return body, status


def assemble(
    kind: str,
    body: dict[str, Any],
    status: dict[str, Any],
    *,
    uid: str,
    resource_version: int | None,
    generation: int,
    creation_timestamp: datetime,
) -> Resource:
    """The typed object from its stored parts."""
    doc = dict(body)
    doc["metadata"] = {
        **body["metadata"],
        "uid": uid,
        "resourceVersion": None if resource_version is None else str(resource_version),
        "generation": generation,
        "creationTimestamp": creation_timestamp,
    }
    doc["status"] = status
    return KINDS[kind].model.model_validate(doc)


def load(kind: str, document: dict[str, Any]) -> Resource:
    """A typed object from a full JSON document (as kept in the watch log)."""
    return KINDS[kind].model.model_validate(document)


def dump(obj: Resource) -> dict[str, Any]:
    return obj.model_dump(mode="json")


def canonical(value: Any) -> str:
    """A stable text form for "did this change?" comparisons (key order must not matter)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
