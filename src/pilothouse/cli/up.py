"""``up``: run the embedded control plane in the foreground until Ctrl-C.

This is the one command that is not an HTTP client: it *is* the server, so it imports the composition
root (``pilothouse.embedded``) — an exception the layer contracts name explicitly — and imports it only
when it runs, so the other commands start fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from pilothouse.cli.context import err, fail
from pilothouse.settings import DEFAULT_GATEWAY_PORT, DEFAULT_HOST, DEFAULT_PORT, Settings, default_data_dir


def parse_accelerators(values: list[str]) -> dict[str, int] | None:
    """``["nvidia.com/gpu=4"]`` -> ``{"nvidia.com/gpu": 4}``; nothing given -> None (discover with NVML)."""
    if not values:
        return None
    declared: dict[str, int] = {}
    for value in values:
        name, sep, count = value.partition("=")
        if not sep or not name or not count.isdigit():
            fail(f"--accelerators: expected NAME=COUNT like nvidia.com/gpu=4, got {value!r}")
        declared[name] = int(count)
    return declared


def up(
    host: Annotated[str, typer.Option(help="Address to listen on")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Control plane API port")] = DEFAULT_PORT,
    gateway_port: Annotated[int, typer.Option(help="Gateway (endpoint URLs) port")] = DEFAULT_GATEWAY_PORT,
    data_dir: Annotated[Path | None, typer.Option(help="State directory (SQLite store, logs)")] = None,
    accelerators: Annotated[
        list[str] | None,
        typer.Option(help="Declare accelerators instead of NVML discovery: nvidia.com/gpu=4"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Start the embedded control plane, runtime and gateway on this machine."""
    # Imported here, not at module top: the server stack (SQLAlchemy, uvicorn, Alembic) costs ~2 s of
    # start-up that every other command (a pure HTTP client) would otherwise pay.
    from pilothouse.embedded.controlplane import EmbeddedControlPlane
    from pilothouse.embedded.guards import StartupError

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness probe is noise
    settings = Settings(
        data_dir=data_dir or default_data_dir(),
        host=host,
        port=port,
        gateway_port=gateway_port,
        accelerators=parse_accelerators(accelerators or []),
    )
    plane = EmbeddedControlPlane(settings)
    err.print(f"pilothouse: data dir {settings.data_dir}")
    try:
        plane.run()
    except StartupError as exc:
        fail(str(exc))
    err.print("pilothouse: stopped")


def register(app: typer.Typer) -> None:
    app.command()(up)
