"""Run the gateway as its own process: ``python -m pilothouse.serving.gateway --port 8080 --admin-port 8081``.

Routes come from the control plane over the admin API (see ``admin.py``; the control plane uses
``RemoteRoutes`` as its ``RoutePublisher``), or from ``--routes FILE`` (JSON, the body of
``PUT /routes``) at start. Inference traffic and ``GET /metrics`` are on ``--port``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
from pathlib import Path

import orjson
import uvloop

from pilothouse.serving.gateway.admin import AdminApi
from pilothouse.serving.gateway.proxy import Gateway
from pilothouse.serving.gateway.routes import RouteTable
from pilothouse.serving.gateway.routes_dir import RoutesDirectory
from pilothouse.serving.gateway.server import start
from pilothouse.serving.gateway.spec import EndpointRoute

log = logging.getLogger("pilothouse.serving.gateway")


def listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def run(args: argparse.Namespace) -> None:
    routes = RouteTable()
    gateway = Gateway(routes, timeout=args.timeout)
    admin = AdminApi(routes)
    if args.routes:
        for entry in orjson.loads(Path(args.routes).read_bytes())["routes"]:
            routes.publish(entry["namespace"], entry["name"], EndpointRoute.from_json(entry["route"]))
    watcher: asyncio.Task[None] | None = None
    if args.routes_dir:
        directory = RoutesDirectory(Path(args.routes_dir), routes)
        directory.sync()

        async def follow() -> None:  # the kubelet rewrites the mounted ConfigMap: re-read every second
            while True:
                await asyncio.sleep(1.0)
                directory.sync()

        watcher = asyncio.get_running_loop().create_task(follow())
    servers = []
    if args.admin_port is not None:
        servers.append(await start(admin, listen(args.admin_host, args.admin_port)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("gateway on %s:%s, admin on %s:%s", args.host, args.port, args.admin_host, args.admin_port)
    if args.server == "uvicorn":  # the ASGI app on uvicorn, as the embedded control plane hosts it
        import uvicorn

        routes.attach(loop)
        config = uvicorn.Config(
            gateway, log_level="warning", access_log=False, http="httptools", lifespan="off"
        )
        await uvicorn.Server(config).serve([listen(args.host, args.port)])  # returns on SIGINT/SIGTERM
    else:
        servers.append(await start(gateway, listen(args.host, args.port)))
        await stop.wait()
    for s in servers:
        s.close()
    if watcher is not None:
        watcher.cancel()
    await gateway.aclose()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pilothouse.serving.gateway", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--admin-host", default="127.0.0.1")
    ap.add_argument("--admin-port", type=int, default=None, help="admin API (route pushes); off if unset")
    ap.add_argument("--routes", help="JSON file of initial routes (the body of PUT /routes)")
    ap.add_argument(
        "--routes-dir",
        help="follow a directory of <namespace>.<name> JSON routes (the mounted routes ConfigMap)",
    )
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds one replica may take to answer")
    ap.add_argument("--log-level", default="warning")
    ap.add_argument(
        "--server",
        choices=["native", "uvicorn"],
        default="native",
        help="HTTP server in front (see server.py)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(args))


if __name__ == "__main__":
    main()
