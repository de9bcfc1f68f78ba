"""``cost``: what workloads cost, per team, endpoint, revision or job, over a time window.

The control plane prices what its metering recorded (``GET .../cost``); this command only renders the
report: a table (per-resource costs, idle GPU cost, cost per 1,000 requests, and a total row), or the
records as JSON or CSV for scripts and spreadsheets. ``cost prices`` shows or replaces the price book
it prices with (``cli.prices``).
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from pilothouse.cli import prices as prices_command
from pilothouse.cli.context import command, fail, out, state

VIEWS = (
    "team",
    "namespace",
    "endpoint",
    "revision",
    "job",
    "attempt",
    "kind",
    "workload",
    "pool",
    "interval",
)
IDLE_ROW = "__idle__"

app = typer.Typer(help="What workloads cost, and the price book they are priced with.")


def money(value: Any) -> str:
    """Dollars for a table: cents from $1 up, four places below (local workloads cost fractions of a cent)."""
    if value is None:
        return "-"
    amount = Decimal(str(value))
    if not amount:
        return "$0"
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:.4f}"


def _key(value: Any) -> str:
    if value is None:
        return "-"
    return "(idle capacity)" if value == IDLE_ROW else str(value)


def render_table(report: dict[str, Any]) -> Table:
    columns: list[str] = report["columns"]
    share = report.get("idle") == "share"
    window = report["window"]
    table = Table(
        title=f"cost by {report['by']}, {window['start'][:19]}Z to {window['end'][:19]}Z",
        box=None,
        pad_edge=False,
        header_style="bold",
        title_justify="left",
    )
    for column in columns:
        table.add_column(column.upper())
    headers = ["CPU $", "MEMORY $", "GPU $", *(["IDLE SHARE $"] if share else []), "TOTAL $"]
    headers += ["IDLE GPU $", "GPU UTIL", "REQUESTS", "$ / 1K REQ"]
    for header in headers:
        table.add_column(header, justify="right")

    def cells(record: dict[str, Any]) -> list[str]:
        util = record.get("gpu_utilization")
        values = [
            money(record["cpu_cost"]),
            money(record["memory_cost"]),
            money(record["gpu_cost"]),
            *([money(record["shared_idle_cost"])] if share else []),
            money(record["total_cost"]),
            money(record["idle_gpu_cost"]),
            "-" if util is None else f"{util}%",
            str(record.get("requests") or 0),
            money(record.get("cost_per_1k_requests")),
        ]
        return values

    items = report["items"]
    for i, record in enumerate(items):
        last = i == len(items) - 1
        table.add_row(*[_key(record.get(c)) for c in columns], *cells(record), end_section=last)
    total = report["total"]
    table.add_row(*[_key(total.get(c)) for c in columns], *cells(total), style="bold")
    return table


def to_csv(report: dict[str, Any]) -> str:
    records = [*report["items"], report["total"]]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


@app.callback(invoke_without_command=True)
@command
def cost(
    ctx: typer.Context,
    team: Annotated[str | None, typer.Option("--team", "-t", help="One team's workloads only")] = None,
    by: Annotated[str, typer.Option("--by", help=f"Group rows by: {', '.join(VIEWS)}")] = "team",
    window: Annotated[
        str, typer.Option("--window", "-w", help="30m, 24h, 7d, today, week, month, lastmonth, or START,END")
    ] = "7d",
    idle: Annotated[
        str, typer.Option(help="Idle capacity as its own row (separate) or spread over workloads (share)")
    ] = "separate",
    output: Annotated[str, typer.Option("--output", "-o", help="table, json or csv")] = "table",
    exact: Annotated[bool, typer.Option(help="JSON/CSV: nano-dollars instead of cents")] = False,
) -> None:
    """What workloads cost: CPU, memory and GPU per team, endpoint or job, with idle GPU and $/1k requests.

    `pilothouse cost prices` shows the price book; `cost prices --set FILE` replaces it."""
    if ctx.invoked_subcommand is not None:
        return  # `cost prices`: the options above are the report's, not the subcommand's
    if output not in ("table", "json", "csv"):
        fail(f"--output: expected table, json or csv, got {output!r}")
    if by not in VIEWS:
        fail(f"--by: expected one of {', '.join(VIEWS)}, got {by!r}")
    cli = state(ctx)
    if cli.cluster:
        fail("cost is metered by the embedded control plane (pilothouse up); not available on a cluster yet")
    with cli.client() as client:
        report = client.cost(window=window, by=by, team=team, idle=idle, exact=exact or output == "table")
    if output == "json":
        out.print(json.dumps(report, indent=2), markup=False, highlight=False, soft_wrap=True)
    elif output == "csv":
        out.print(to_csv(report), markup=False, highlight=False, soft_wrap=True, end="")
    else:
        out.print(render_table(report))


app.command("prices")(prices_command.prices)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="cost")
