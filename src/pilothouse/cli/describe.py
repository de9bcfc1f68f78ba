"""``describe``: one object in full — spec, status, conditions, replicas, and its events timeline."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from pilothouse.api.registry import resolve_kind
from pilothouse.cli.context import command, out, state
from pilothouse.cli.output import age


def _table(columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _section(title: str) -> None:
    out.print(f"[bold]{title}:[/bold]")


def _replica_rows(replicas: list[dict[str, Any]]) -> list[list[str]]:
    return [
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


@command
def describe(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument()],
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
) -> None:
    """Show one resource with its status, replicas and recent events."""
    info = resolve_kind(kind)
    with state(ctx).client() as client:
        obj = client.get(info, namespace, name)
        replicas = client.replicas(info, namespace, name)
        events = client.events(namespace, info.kind, name)
    meta = obj.metadata
    out.print(f"[bold]Name:[/bold]         {meta.name}")
    out.print(f"[bold]Namespace:[/bold]    {meta.namespace}")
    out.print(f"[bold]Kind:[/bold]         {obj.kind} ({obj.apiVersion})")
    out.print(
        f"[bold]Labels:[/bold]       {', '.join(f'{k}={v}' for k, v in meta.labels.items()) or '<none>'}"
    )
    out.print(f"[bold]Created:[/bold]      {meta.creationTimestamp} ({age(meta.creationTimestamp)} ago)")
    out.print(f"[bold]Generation:[/bold]   {meta.generation} (observed {obj.status.observedGeneration})")
    out.print(f"[bold]URL:[/bold]          {obj.status.url or '<pending>'}")
    out.print(
        f"[bold]Replicas:[/bold]     {obj.status.readyReplicas} ready / {obj.status.desiredReplicas} desired "
        f"({obj.status.replicas} total), serving revision {obj.status.revision or '-'}"
    )
    _section("Spec")
    out.print(
        yaml.safe_dump(obj.spec.model_dump(mode="json", exclude_none=True), sort_keys=False).rstrip(),
        markup=False,
    )
    _section("Conditions")
    out.print(
        _table(
            ["TYPE", "STATUS", "REASON", "MESSAGE", "LAST TRANSITION"],
            [
                [c.type, c.status, c.reason, c.message, age(c.lastTransitionTime)]
                for c in obj.status.conditions
            ],
        )
    )
    _section("Replicas")
    if replicas:
        out.print(
            _table(["ID", "REV", "PHASE", "URL", "RESTARTS", "DEVICES", "REASON"], _replica_rows(replicas))
        )
    else:
        out.print("  <none>")
    _section("Events")
    if events:
        out.print(
            _table(
                ["TYPE", "REASON", "AGE", "COUNT", "MESSAGE"],
                [
                    [e["type"], e["reason"], age(e["lastTimestamp"]), str(e["count"]), e["message"]]
                    for e in events[-20:]
                ],
            )
        )
    else:
        out.print("  <none>")


def register(app: typer.Typer) -> None:
    app.command()(describe)
