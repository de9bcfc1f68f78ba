"""The ``pilothouse`` entry point: global options and the command groups."""

from __future__ import annotations

from typing import Annotated

import typer

import pilothouse.cli.cost as cost_command  # cost: `pilothouse cost`
import pilothouse.cli.top as top_command  # observability: `pilothouse top`
from pilothouse.cli import describe, install, logs, queue, render, resources, rollout, sim, up, version
from pilothouse.cli.context import fail, state

app = typer.Typer(
    name="pilothouse",
    help="Declare model endpoints in small manifests; Pilothouse runs them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main_options(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(
            "--server", "-s", help="Control plane URL (default: $PILOTHOUSE_SERVER or http://127.0.0.1:7420)"
        ),
    ] = None,
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig",
            help="Talk to the Kubernetes cluster of this kubeconfig (the operator must run there)",
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option("--context", help="kubeconfig context (default: the current one); implies a cluster"),
    ] = None,
) -> None:
    if server and (kubeconfig or context):
        fail("use either --server (pilothouse up) or --kubeconfig/--context (a cluster), not both")
    cli_state = state(ctx)
    cli_state.server, cli_state.kubeconfig, cli_state.context = server, kubeconfig, context


for module in (up, resources, describe, logs, queue, rollout, sim, render, install, version):
    module.register(app)
top_command.register(app)  # observability
cost_command.register(app)  # cost: `pilothouse cost`


def main() -> None:
    app()
