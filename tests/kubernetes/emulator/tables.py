"""Server-side printing: the ``Table`` kubectl asks for with ``Accept: application/json;as=Table``.

kubectl renders whatever columns the server sends. For custom resources they are NAME, the CRD's
``additionalPrinterColumns`` and AGE; built-ins get NAME and AGE (plus STATUS for namespaces), which is
less than a real server prints but enough to read. Only the JSONPath forms CRDs use in practice are
evaluated: ``.a.b``, ``.a[0].b`` and ``.a[?(@.type=="Ready")].status``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from .discovery import ResourceType

_FILTER = re.compile(r'^\?\(@\.([A-Za-z0-9_]+)\s*==\s*["\']([^"\']*)["\']\)$')


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def jsonpath(obj: Any, path: str) -> Any:
    tokens = re.findall(r"\.([A-Za-z0-9_-]+)|\[([^\]]+)\]", path.strip())
    node = obj
    for name, bracket in tokens:
        if node is None:
            return None
        if name:
            node = node.get(name) if isinstance(node, dict) else None
        elif bracket.isdigit():
            node = node[int(bracket)] if isinstance(node, list) and int(bracket) < len(node) else None
        else:
            match = _FILTER.match(bracket)
            if not match or not isinstance(node, list):
                return None
            node = next(
                (i for i in node if isinstance(i, dict) and str(i.get(match.group(1))) == match.group(2)),
                None,
            )
    return node


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - created).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"


def _cell(value: Any, type_: str) -> Any:
    if value is None:
        return None
    if type_ == "date":
        return age(str(value))
    if isinstance(value, dict | list):
        return str(value)
    return value


def table(
    rt: ResourceType, items: list[dict[str, Any]], list_meta: dict[str, Any], include: str
) -> dict[str, Any]:
    columns: list[dict[str, Any]] = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": "Name of the object",
            "priority": 0,
        }
    ]
    extra: list[tuple[str, str]] = []
    if rt.custom:
        for col in rt.printer_columns:
            columns.append(
                {
                    "name": col["name"],
                    "type": col.get("type", "string"),
                    "format": col.get("format", ""),
                    "description": col.get("description", ""),
                    "priority": col.get("priority", 0),
                }
            )
            extra.append((col["jsonPath"], col.get("type", "string")))
    elif rt.kind == "Namespace":
        columns.append(
            {"name": "Status", "type": "string", "format": "", "description": "phase", "priority": 0}
        )
        extra.append((".status.phase", "string"))
    if not any(c["name"] == "Age" for c in columns):
        columns.append({"name": "Age", "type": "date", "format": "", "description": "age", "priority": 0})
        extra.append((".metadata.creationTimestamp", "date"))
    rows = []
    for item in items:
        row: dict[str, Any] = {
            "cells": [item["metadata"]["name"], *(_cell(jsonpath(item, p), t) for p, t in extra)]
        }
        if include == "Object":
            row["object"] = item
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": item["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    }
