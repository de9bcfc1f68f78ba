"""``version``: this client's version and, when reachable, the server's."""

from __future__ import annotations

import typer

from pilothouse import __version__
from pilothouse.cli.context import out, state
from pilothouse.client import ApiError


def version(ctx: typer.Context) -> None:
    """Print client and server versions."""
    out.print(f"Client Version: {__version__}")
    with state(ctx).client() as client:
        try:
            info = client.version()
        except ApiError as exc:
            out.print(f"Server Version: <unreachable> ({exc.message})")
            return
    out.print(f"Server Version: {info['version']} (runtime {info['runtime']}, gateway {info['gatewayURL']})")


def register(app: typer.Typer) -> None:
    app.command()(version)
