"""``logs``: a model server's output, from every replica (prefixed) or one; ``-f`` follows."""

from __future__ import annotations

from typing import Annotated

import typer

from pilothouse.api.registry import resolve_kind
from pilothouse.cli.context import command, out, state


@command
def logs(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="NAME of a model endpoint, or KIND when NAME follows")],
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    replica: Annotated[str | None, typer.Option("--replica", help="One replica's id (see describe)")] = None,
    tail: Annotated[int | None, typer.Option("--tail", help="Last N lines per replica")] = None,
) -> None:
    """Print the logs of a model endpoint's replicas."""
    info = resolve_kind(target if name else "modelendpoint")
    with state(ctx).client() as client:
        try:
            for line in client.logs(
                info, namespace, name or target, replica=replica, follow=follow, tail=tail
            ):
                out.print(line, markup=False, highlight=False)
        except KeyboardInterrupt:
            return


def register(app: typer.Typer) -> None:
    app.command()(logs)
