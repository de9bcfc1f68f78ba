"""The ``pilothouse`` entry point: global options and the command groups."""

from __future__ import annotations

from typing import Annotated

import typer

from pilothouse.cli import describe, install, logs, queue, render, resources, rollout, up, version
from pilothouse.cli.context import state

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
) -> None:
    state(ctx).server = server


for module in (up, resources, describe, logs, queue, rollout, render, install, version):
    module.register(app)


def main() -> None:
    app()
