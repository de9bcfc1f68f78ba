"""``describe``: one object in full — header, spec, status, conditions, what runs, and its events.

A Team also shows its budget in words: the monthly amount, warning thresholds and actions from the
spec, and from the status the metering loop writes, the spend this month and the budget state.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from pilothouse.api.job import Job
from pilothouse.api.meta import Condition
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import Resource, resolve_kind
from pilothouse.api.team import Team
from pilothouse.cli.context import command, out, state
from pilothouse.cli.output import age, estimated_start, team_table
from pilothouse.client import PilothouseClient


def _table(columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _field(label: str, value: object) -> None:
    out.print(f"[bold]{label + ':':<14}[/bold]{value}")


def _section(title: str) -> None:
    out.print(f"[bold]{title}:[/bold]")


def _header(obj: Resource) -> None:
    meta = obj.metadata
    _field("Name", meta.name)
    if meta.namespace:
        _field("Namespace", meta.namespace)
    _field("Kind", f"{obj.kind} ({obj.apiVersion})")
    _field("Labels", ", ".join(f"{k}={v}" for k, v in meta.labels.items()) or "<none>")
    _field("Created", f"{meta.creationTimestamp} ({age(meta.creationTimestamp)} ago)")
    _field("Generation", f"{meta.generation} (observed {obj.status.observedGeneration})")


def _spec(obj: Resource) -> None:
    _section("Spec")
    out.print(
        yaml.safe_dump(obj.spec.model_dump(mode="json", exclude_none=True), sort_keys=False).rstrip(),
        markup=False,
    )


def _conditions(conditions: list[Condition]) -> None:
    _section("Conditions")
    rows = [[c.type, c.status, c.reason, c.message, age(c.lastTransitionTime)] for c in conditions]
    out.print(
        _table(["TYPE", "STATUS", "REASON", "MESSAGE", "LAST TRANSITION"], rows) if rows else "  <none>"
    )


def _events(events: list[dict[str, Any]]) -> None:
    _section("Events")
    rows = [
        [e["type"], e["reason"], age(e["lastTimestamp"]), str(e["count"]), e["message"]] for e in events[-20:]
    ]
    out.print(_table(["TYPE", "REASON", "AGE", "COUNT", "MESSAGE"], rows) if rows else "  <none>")


def _describe_endpoint(client: PilothouseClient, obj: ModelEndpoint) -> None:
    status = obj.status
    _field("URL", status.url or "<pending>")
    _field(
        "Replicas",
        f"{status.readyReplicas} ready / {status.desiredReplicas} desired ({status.replicas} total), "
        f"serving revision {status.revision or '-'}",
    )
    rollout = obj.spec.rollout
    step = f", step {status.canaryStep + 1}/{len(rollout.steps)}" if status.canaryStep is not None else ""
    _field(
        "Rollout",
        f"{status.rolloutPhase or 'Pending'} ({rollout.strategy}{step}); "
        f"stable revision {status.stableRevision or '-'}, latest {status.latestRevision or '-'}",
    )
    _section("Traffic")
    rows = [
        [str(t.revision), f"{t.percent}%", f"{t.readyReplicas}/{t.desiredReplicas}"] for t in status.traffic
    ]
    out.print(_table(["REVISION", "TRAFFIC", "READY"], rows) if rows else "  <none>")
    _spec(obj)
    _conditions(status.conditions)
    _section("Replicas")
    replicas = client.replicas(resolve_kind("me"), obj.metadata.namespace, obj.metadata.name)
    rows = [
        [
            r["id"],
            str(r["revision"]),
            r["phase"],
            r.get("url") or "",
            str(r["restarts"]),
            ",".join(r.get("devices") or []) or "-",
            (r.get("reason") or "") + (f": {r['message']}" if r.get("message") else ""),
        ]
        for r in replicas
    ]
    out.print(
        _table(["ID", "REV", "PHASE", "URL", "RESTARTS", "DEVICES", "REASON"], rows) if rows else "  <none>"
    )


def _describe_job(obj: Job) -> None:
    status = obj.status
    _field("Phase", f"{status.phase}" + (f" ({status.reason})" if status.reason else ""))
    if status.message:
        _field("Message", status.message)
    if status.phase == "Pending":
        _field(
            "Queue",
            f"position {status.queuePosition or '-'}, estimated start {estimated_start(status)}",
        )
    _field("Attempts", f"{status.attempts} (failures {status.failures}, preemptions {status.preemptions})")
    _field("Devices", "; ".join(d or "-" for d in status.devices) or "<none>")
    if status.startTime:
        _field("Started", status.startTime)
    if status.completionTime:
        code = (
            f"exit code {status.exitCode}"
            if status.exitCode is not None
            else f"no exit code: {status.reason}"
        )
        _field("Completed", f"{status.completionTime} ({code})")
    _spec(obj)
    _conditions(status.conditions)


def _dollars(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def _percent(fraction: float) -> str:
    return f"{(Decimal(str(fraction)) * 100).normalize():f}%"


def _spend(text: str | None) -> Decimal | None:
    try:
        return None if text is None else Decimal(text)
    except InvalidOperation:
        return None


def _budget(obj: Team) -> None:
    """The budget (spec) and where the team stands against it (status, written by metering)."""
    budget, status = obj.spec.budget, obj.status
    amount = None if budget is None else Decimal(str(budget.monthlyAmount))
    if budget is None or amount is None:
        _field("Budget", "<none>")
    else:
        _field("Budget", f"{_dollars(amount)} per calendar month (UTC)")
        thresholds = ", ".join(_percent(t) for t in budget.thresholds)
        _field("  Thresholds", f"{thresholds} (warn at each; the highest is exceeded)")
        _field("  Actions", f"{', '.join(budget.actions)} (while exceeded; running work is never stopped)")
    spend = _spend(status.spendThisMonth)
    if spend is None:
        _field("Spend", escape(status.spendThisMonth or "<not priced yet>"))
    else:
        share = "" if amount is None else f" ({int(spend * 100 / amount)}% of the budget)"
        _field("Spend", f"{_dollars(spend)} this month{share}")
    if budget is not None:
        _field("Budget state", escape(status.budgetState or "<not evaluated yet>"))


def _describe_team(obj: Team) -> None:
    out.print(team_table([obj], wide=True))
    _budget(obj)
    _spec(obj)
    _conditions(obj.status.conditions)


@command
def describe(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument()],
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
) -> None:
    """Show one resource with its status, what runs for it, and recent events."""
    info = resolve_kind(kind)
    namespace = namespace if info.namespaced else ""
    with state(ctx).client() as client:
        obj = client.get(info, namespace, name)
        _header(obj)
        if isinstance(obj, ModelEndpoint):
            _describe_endpoint(client, obj)
        elif isinstance(obj, Job):
            _describe_job(obj)
        else:
            _describe_team(obj)
        _events(client.events(namespace or "default", info.kind, name) if info.namespaced else [])


def register(app: typer.Typer) -> None:
    app.command()(describe)
