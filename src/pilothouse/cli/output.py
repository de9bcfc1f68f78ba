"""How objects are shown: ``-o yaml|json|wide`` and the default table, with kubectl-style ages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import yaml
from rich.table import Table

from pilothouse.api.job import INADMISSIBLE, Job, JobStatus
from pilothouse.api.meta import get_condition
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import Resource, to_document
from pilothouse.api.team import Team


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


def until(when: datetime | str | None, now: datetime | None = None) -> str:
    """A future time as users read a queue: ``in ~12m`` (or ``now`` once it has passed)."""
    if when is None:
        return "unknown"
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    seconds = int((when - (now or datetime.now(UTC))).total_seconds())
    return "now" if seconds <= 0 else f"in ~{age(datetime.now(UTC) - timedelta(seconds=seconds))}"


def estimated_start(status: JobStatus) -> str:
    """A pending job's ETA as the queue shows it: ``never`` when it cannot start as things are."""
    return "never" if status.reason == INADMISSIBLE else until(status.estimatedStartTime)


def dump(docs: list[dict[str, Any]] | dict[str, Any], fmt: OutputFormat) -> str:
    if fmt == OutputFormat.json:
        return json.dumps(docs, indent=2)
    if isinstance(docs, list):
        return yaml.safe_dump_all(docs, sort_keys=False).rstrip()
    return yaml.safe_dump(docs, sort_keys=False).rstrip()


def as_documents(objs: list[Resource]) -> list[dict[str, Any]]:
    return [to_document(o) for o in objs]


def _table(columns: list[str]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def endpoint_table(objs: list[ModelEndpoint], *, all_namespaces: bool, wide: bool) -> Table:
    columns = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "READY", "REPLICAS", "URL", "AGE"]
    table = _table(columns + (["REVISION", "MODEL", "REASON"] if wide else []))
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


def _gpus(job: Job) -> str:
    return str(job.spec.resources.gpus * job.spec.workers)


def job_table(objs: list[Job], *, all_namespaces: bool, wide: bool) -> Table:
    columns = (["NAMESPACE"] if all_namespaces else []) + [
        "NAME",
        "PHASE",
        "WORKERS",
        "GPUS",
        "PRIORITY",
        "AGE",
        "REASON",
    ]
    table = _table(columns + (["ATTEMPTS", "PREEMPTIONS", "DEVICES", "MESSAGE"] if wide else []))
    for job in objs:
        row = [job.metadata.namespace] if all_namespaces else []
        row += [
            job.metadata.name,
            job.status.phase,
            str(job.spec.workers),
            _gpus(job),
            job.spec.priorityClassName,
            age(job.metadata.creationTimestamp),
            job.status.reason,
        ]
        if wide:
            row += [
                str(job.status.attempts),
                str(job.status.preemptions),
                "; ".join(job.status.devices),
                job.status.message,
            ]
        table.add_row(*row)
    return table


def team_table(objs: list[Team], *, wide: bool) -> Table:
    table = _table(
        [
            "NAME",
            "COHORT",
            "WEIGHT",
            "RESOURCE",
            "NOMINAL",
            "USED",
            "BORROWED",
            "FAIR SHARE",
            "RUNNING",
            "PENDING",
        ]
    )
    for team in objs:
        resources = sorted(set(team.spec.quotas) | set(team.status.resources)) or ["-"]
        for index, resource in enumerate(resources):
            usage = team.status.resources.get(resource)
            quota = team.spec.quotas.get(resource)
            first = index == 0
            table.add_row(
                team.metadata.name if first else "",
                (team.spec.cohort or "-") if first else "",
                f"{team.spec.weight:g}" if first else "",
                resource,
                quota.nominal if quota else "0",
                usage.used if usage else "0",
                usage.borrowed if usage else "0",
                usage.fairShare if usage else "0",
                str(team.status.runningJobs) if first else "",
                str(team.status.pendingJobs) if first else "",
            )
    return table


def table_for(objs: list[Resource], *, all_namespaces: bool, wide: bool) -> Table:
    if objs and isinstance(objs[0], Job):
        return job_table([o for o in objs if isinstance(o, Job)], all_namespaces=all_namespaces, wide=wide)
    if objs and isinstance(objs[0], Team):
        return team_table([o for o in objs if isinstance(o, Team)], wide=wide)
    return endpoint_table(
        [o for o in objs if isinstance(o, ModelEndpoint)], all_namespaces=all_namespaces, wide=wide
    )
