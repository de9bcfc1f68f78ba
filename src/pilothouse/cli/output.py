"""How objects are shown: ``-o yaml|json|wide`` and the default table, with kubectl-style ages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import yaml
from rich.table import Table

from pilothouse.api.meta import get_condition
from pilothouse.api.registry import Resource, to_document


class OutputFormat(StrEnum):
    table = "table"
    wide = "wide"
    yaml = "yaml"
    json = "json"


def age(when: datetime | str | None, now: datetime | None = None) -> str:
    if when is None:
        return "<unknown>"
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def dump(docs: list[dict[str, Any]] | dict[str, Any], fmt: OutputFormat) -> str:
    if fmt == OutputFormat.json:
        return json.dumps(docs, indent=2)
    if isinstance(docs, list):
        return yaml.safe_dump_all(docs, sort_keys=False).rstrip()
    return yaml.safe_dump(docs, sort_keys=False).rstrip()


def as_documents(objs: list[Resource]) -> list[dict[str, Any]]:
    return [to_document(o) for o in objs]


def endpoint_table(objs: list[Resource], *, all_namespaces: bool, wide: bool) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    columns = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "READY", "REPLICAS", "URL", "AGE"]
    if wide:
        columns += ["REVISION", "MODEL", "REASON"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for obj in objs:
        ready = get_condition(obj.status.conditions, "Ready")
        row = [obj.metadata.namespace] if all_namespaces else []
        row += [
            obj.metadata.name,
            ready.status if ready else "Unknown",
            f"{obj.status.readyReplicas}/{obj.status.desiredReplicas}",
            obj.status.url or "",
            age(obj.metadata.creationTimestamp),
        ]
        if wide:
            model = obj.spec.model
            source = model.uri or model.image or " ".join(model.command or [])
            row += [
                str(obj.status.revision or ""),
                f"{model.format or model.kind}:{source}",
                ready.reason if ready else "",
            ]
        table.add_row(*row)
    return table
