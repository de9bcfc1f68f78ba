"""``sim``: replay a GPU cluster trace through the scheduler core and report JCT, utilization and fairness.

Runs entirely locally (no control plane): it is how a policy change is judged before it ships, on the
same engine the queue controller uses. The simulator (and numpy) is imported when the command runs, not
when the CLI starts, so that every other command stays quick to start.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pilothouse.cli.context import fail, out
from pilothouse.scheduling.policies import POLICIES

if TYPE_CHECKING:
    from pilothouse.scheduling.sim_metrics import Metrics


class SimOutput(StrEnum):
    table = "table"
    json = "json"


def sim(
    trace: Annotated[Path, typer.Option("--trace", help="Trace CSV: timestamp,duration,num_gpus,cluster")],
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs in the simulated cluster")],
    policy: Annotated[str, typer.Option("--policy", help=f"One of: {', '.join(POLICIES)}")] = "fair",
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N jobs of the trace")] = None,
    estimates: Annotated[
        str, typer.Option("--estimates", help="Durations told to fair/fifo-backfill: history or oracle")
    ] = "history",
    output: Annotated[SimOutput, typer.Option("--output", "-o", help="table or json")] = SimOutput.table,
) -> None:
    """Simulate a trace under one scheduling policy."""
    if policy not in POLICIES:
        fail(f"--policy: unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    if gpus <= 0:
        fail(f"--gpus: must be a positive number of GPUs, got {gpus}")
    if limit is not None and limit <= 0:
        fail(f"--limit: must be positive, got {limit}")
    if estimates not in {"history", "oracle"}:
        fail(f"--estimates: must be history or oracle, got {estimates!r}")
    from pilothouse.scheduling.sim_metrics import measure
    from pilothouse.scheduling.sim_run import simulate
    from pilothouse.scheduling.sim_trace import TraceError, load

    try:
        loaded = load(trace, limit)
    except TraceError as exc:
        fail(f"--trace: {exc}")
    metrics = measure(simulate(loaded.jobs, gpus, policy, estimates=estimates))
    if output is SimOutput.json:
        out.print_json(json.dumps(metrics.as_dict()))
        return
    render(metrics)


def render(m: Metrics) -> None:
    table = Table(
        title=f"{m.policy} on {m.gpus} GPUs ({m.jobs} jobs, {m.dropped} dropped as larger than the cluster)"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("average JCT", f"{m.avg_jct_h:.2f} h"),
        ("p99 JCT", f"{m.p99_jct_h:.1f} h"),
        ("average wait", f"{m.avg_wait_h:.2f} h"),
        ("makespan", f"{m.makespan_h:.0f} h"),
        ("GPU utilization", f"{m.utilization:.1%}"),
        ("GPUs busy while jobs wait", f"{m.busy_while_waiting:.1%}"),
        ("GPUs busy until the last arrival", f"{m.busy_while_arriving:.1%}"),
        ("Jain's index (held / fair share)", f"{m.jain:.3f}"),
        ("team-hours below 90% of fair share", f"{m.team_hours_below:.1%}"),
        ("...even with one more of its smallest waiting job", f"{m.team_hours_below_one_job:.1%}"),
        ("hours with any team below 90%", f"{m.hours_any_below:.1%}"),
        ("preemptions", str(m.preemptions)),
        ("scheduling cycles", str(m.cycles)),
        ("admissions / s (wall)", f"{m.admissions_per_s:,.0f}"),
        ("wall time", f"{m.wall_s:.1f} s"),
        ("durations told to the scheduler", m.estimates),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    teams = Table(title="per team")
    for column in ("team", "entitlement", "share of GPU-time", "held / fair share", "hours below 90%"):
        teams.add_column(column, justify="right" if column != "team" else "left")
    for t in m.teams:
        ratio = "-" if t.fair_ratio is None else f"{t.fair_ratio:.2f}"
        teams.add_row(
            t.team, f"{t.entitlement:.1%}", f"{t.share:.1%}", ratio, f"{t.hours_below}/{t.hours_waiting}"
        )
    out.print(teams)


def register(app: typer.Typer) -> None:
    app.command()(sim)
