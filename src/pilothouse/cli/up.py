"""``up``: run the embedded control plane in the foreground until Ctrl-C.

This is the one command that is not an HTTP client: it *is* the server, so it imports the composition
root (``pilothouse.embedded``) — an exception the layer contracts name explicitly — and imports it only
when it runs, so the other commands start fast.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from pilothouse.cli.context import err, fail
from pilothouse.observability.logs import LOG_FORMAT_ENV, LOG_FORMATS, LogFormat, configure_logging
from pilothouse.observability.tracing import OTLP_ENDPOINT_ENV
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
    # -- observability options (docs/observability.md)
    log_format: Annotated[
        str,
        typer.Option(
            envvar=LOG_FORMAT_ENV,
            help="text (for humans) or json (one object per line, with request and trace ids); "
            "replicas inherit it",
        ),
    ] = "text",
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            envvar=OTLP_ENDPOINT_ENV,
            help="Send traces (gateway and model-server spans) to this OTLP/HTTP collector, "
            "e.g. http://127.0.0.1:4318; off when unset",
        ),
    ] = None,
    # -- cost options (docs/cost.md)
    price_book: Annotated[
        Path | None, typer.Option(help="Price book YAML (docs/cost.md); default: OpenCost's default prices")
    ] = None,
    metering_interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between metering passes (usage samples)")
    ] = 10.0,
    budget_interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between pricings of the month for team budgets")
    ] = 60.0,
) -> None:
    """Start the embedded control plane, runtime and gateway on this machine."""
    # Imported here, not at module top: the server stack (SQLAlchemy, uvicorn, Alembic) costs ~2 s of
    # start-up that every other command (a pure HTTP client) would otherwise pay.
    from pilothouse.embedded.controlplane import EmbeddedControlPlane
    from pilothouse.embedded.guards import StartupError

    # -- observability: log format and OTLP endpoint; the environment carries both to the replicas
    if log_format not in LOG_FORMATS:
        fail(f"--log-format: expected one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    fmt: LogFormat = "json" if log_format == "json" else "text"
    configure_logging(log_level, fmt, static={"service": "pilothouse-controlplane"}, datefmt="%H:%M:%S")
    os.environ[LOG_FORMAT_ENV] = fmt
    if otlp_endpoint:
        os.environ[OTLP_ENDPOINT_ENV] = otlp_endpoint
    # -- end observability
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness probe is noise
    settings = Settings(
        data_dir=data_dir or default_data_dir(),
        host=host,
        port=port,
        gateway_port=gateway_port,
        accelerators=parse_accelerators(accelerators or []),
        price_book=price_book,  # cost
        metering_seconds=metering_interval,  # cost
        budget_seconds=budget_interval,  # cost
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
