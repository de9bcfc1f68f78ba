"""``top endpoints|jobs|gpus``: a live view of traffic, jobs and GPU allocation, like ``kubectl top``.

A client of ``/apis/top.pilothouse.dev/v1alpha1`` only (the server computes; the CLI formats). It
redraws every ``--interval`` seconds (2 by default) with Rich Live until Ctrl-C; ``--once`` prints one
table and exits, for scripts and tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import typer
from rich.live import Live
from rich.table import Table

from pilothouse.cli.context import command, out, state
from pilothouse.client import PilothouseClient

View = Literal["endpoints", "jobs", "gpus"]

app = typer.Typer(help="Live view of endpoints (rps, p99), jobs and GPUs.", no_args_is_help=True)


def _table(columns: list[str]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}ms"


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**30:.1f}Gi"


def endpoints_table(doc: dict[str, Any]) -> Table:
    table = _table(["NAMESPACE", "NAME", "PHASE", "REPLICAS", "RPS", "P99", "ERRORS", "CONC", "GPUS", "GPU%"])
    for item in doc["items"]:
        table.add_row(
            item["namespace"],
            item["name"],
            item["phase"],
            f"{item['readyReplicas']}/{item['desiredReplicas']}",
            f"{item['requestsPerSecond']:.1f}",
            _ms(item["p99Seconds"]),
            _pct(item["errorRatio"]),
            f"{item['concurrency']:.1f}",
            ",".join(item["devices"]) or "-",
            _pct(item["gpuUtilizationRatio"]),
        )
    return table


def jobs_table(doc: dict[str, Any]) -> Table:
    table = _table(["NAMESPACE", "NAME", "PHASE", "WORKERS", "GPUS", "DEVICES", "RUNTIME", "WAITING", "POS"])
    for item in doc["items"]:
        table.add_row(
            item["namespace"],
            item["name"],
            item["phase"],
            str(item["workers"]),
            str(item["gpus"]),
            "; ".join(item["devices"]) or "-",
            _duration(item["runtimeSeconds"]),
            _duration(item["waitingSeconds"]),
            str(item["queuePosition"] or "-"),
        )
    return table


def gpus_table(doc: dict[str, Any]) -> Table:
    table = _table(["RESOURCE", "DEVICE", "STATE", "OWNER", "UTIL", "MEMORY", "POWER"])
    for item in doc["items"]:
        owner = f"{item['ownerKind']} {item['namespace']}/{item['owner']}" if item["allocated"] else "-"
        used, total = item["memoryUsedBytes"], item["memoryTotalBytes"]
        table.add_row(
            item["resource"],
            item["device"],
            "allocated" if item["allocated"] else "free",
            owner,
            _pct(item["utilizationRatio"]),
            "-" if used is None else f"{_gib(used)}/{_gib(total)}",
            "-" if item["powerWatts"] is None else f"{item['powerWatts']:.0f}W",
        )
    return table


RENDER: dict[View, Callable[[dict[str, Any]], Table]] = {
    "endpoints": endpoints_table,
    "jobs": jobs_table,
    "gpus": gpus_table,
}


def run(client: PilothouseClient, view: View, namespace: str | None, once: bool, interval: float) -> None:
    def render() -> Table:
        return RENDER[view](client.top(view, namespace))

    if once:
        out.print(render())
        return
    try:
        with Live(render(), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(render(), refresh=True)
    except KeyboardInterrupt:
        return


Namespace = Annotated[str | None, typer.Option("--namespace", "-n", help="One team (default: all)")]
Once = Annotated[bool, typer.Option("--once", help="Print one table and exit")]
Interval = Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between refreshes")]


@app.command("endpoints")
@command
def endpoints(
    ctx: typer.Context, namespace: Namespace = None, once: Once = False, interval: Interval = 2.0
) -> None:
    """Requests/s, p99 latency, errors, replicas and GPUs per ModelEndpoint."""
    with state(ctx).client() as client:
        run(client, "endpoints", namespace, once, interval)


@app.command("jobs")
@command
def jobs(
    ctx: typer.Context, namespace: Namespace = None, once: Once = False, interval: Interval = 2.0
) -> None:
    """Jobs with their GPUs, devices, runtime and queue wait."""
    with state(ctx).client() as client:
        run(client, "jobs", namespace, once, interval)


@app.command("gpus")
@command
def gpus(ctx: typer.Context, once: Once = False, interval: Interval = 2.0) -> None:
    """Every accelerator: allocated or free, its owner, and NVML utilization, memory and power."""
    with state(ctx).client() as client:
        run(client, "gpus", None, once, interval)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="top")
