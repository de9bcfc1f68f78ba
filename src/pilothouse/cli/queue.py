"""``queue``: the pending jobs in the order they will be admitted, with an ETA and why each one waits.

This answers the question users of GPU queues ask most ("why is my job not running, and when will it?")
from the job statuses the queue pass maintains — the CLI computes nothing itself.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pilothouse.api.job import Job
from pilothouse.api.registry import resolve_kind
from pilothouse.cli.context import command, err, out, state
from pilothouse.cli.output import age, estimated_start


@command
def queue(
    ctx: typer.Context,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="One team's jobs")] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Every team's jobs (the default; overrides -n)")
    ] = False,
) -> None:
    """Pending jobs: position, estimated start and the reason they wait (every team's unless -n)."""
    if all_namespaces:
        namespace = None
    with state(ctx).client() as client:
        jobs = [j for j in client.list(resolve_kind("job"), namespace) if isinstance(j, Job)]
    pending = [j for j in jobs if j.status.phase == "Pending"]
    pending.sort(key=lambda j: (j.status.queuePosition is None, j.status.queuePosition or 0, j.metadata.name))
    running = sum(j.status.phase in ("Admitted", "Running", "Preempting") for j in jobs)
    if not pending:
        err.print(f"No pending jobs ({running} running).")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("POS", "TEAM", "JOB", "GPUS", "PRIORITY", "WAITING", "ETA", "REASON"):
        table.add_column(column, overflow="fold")
    for job in pending:
        table.add_row(
            str(job.status.queuePosition or "-"),
            job.metadata.namespace,
            job.metadata.name,
            str(job.spec.resources.gpus * job.spec.workers),
            job.spec.priorityClassName,
            age(job.metadata.creationTimestamp),
            estimated_start(job.status),
            job.status.message or job.status.reason,
        )
    out.print(table)
    out.print(f"{len(pending)} pending, {running} running")


def register(app: typer.Typer) -> None:
    app.command()(queue)
