"""Real upstream replicas for the gateway tests: small ASGI apps on uvicorn in threads, on 127.0.0.1.

Each replica counts the requests it saw and how many it had in flight at most, and understands:
``?sleep=S`` (answer after S seconds), ``/status/N`` (answer with status N), ``/block`` (answer once
the test calls ``release()``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import orjson
import pytest
import uvicorn

from pilothouse.serving.gateway.proxy import Gateway
from pilothouse.serving.gateway.routes import RouteTable
from pilothouse.serving.gateway.server import start
from support import free_port, wait_for


class Replica:
    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hits = 0
        self.inflight = 0
        self.max_inflight = 0
        self.paths: list[str] = []
        self.delay = 0.0  # seconds every request takes
        self._gate: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, port=self.port, log_level="warning", lifespan="off", interface="asgi3")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, what=f"replica {name}")

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self._loop = asyncio.get_running_loop()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.hits += 1
        self.paths.append(scope["path"])
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            query = parse_qs(scope["query_string"].decode())
            if self.delay:
                await asyncio.sleep(self.delay)
            if "sleep" in query:
                await asyncio.sleep(float(query["sleep"][0]))
            if scope["path"] == "/block":
                if self._gate is None:
                    self._gate = asyncio.Event()
                await self._gate.wait()
            status = int(scope["path"].split("/")[2]) if scope["path"].startswith("/status/") else 200
        finally:
            self.inflight -= 1
        payload = orjson.dumps(
            {
                "replica": self.name,
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode(),
                "body": body.decode(),
                "trace": dict(scope["headers"]).get(b"x-trace", b"").decode(),
            }
        )
        headers = [(b"content-type", b"application/json"), (b"x-replica", self.name.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def release(self) -> None:
        """Let every ``/block`` request (now and later) answer."""
        assert self._loop is not None

        def open_gate() -> None:
            if self._gate is None:
                self._gate = asyncio.Event()
            self._gate.set()

        self._loop.call_soon_threadsafe(open_gate)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_replica() -> Iterator[Callable[[str], Replica]]:
    servers: list[Replica] = []

    def make(name: str) -> Replica:
        servers.append(Replica(name))
        return servers[-1]

    yield make
    for server in servers:
        if server._loop is not None:
            server.release()
        server.stop()


@pytest.fixture
def replicas(make_replica: Callable[[str], Replica]) -> list[Replica]:
    return [make_replica("a"), make_replica("b")]


class Served:
    """A gateway on the native server in the test's event loop, and an HTTP client pointed at it."""

    def __init__(self, routes: RouteTable, gateway: Gateway, client: httpx.AsyncClient) -> None:
        self.routes = routes
        self.gateway = gateway
        self.client = client


@pytest.fixture
async def served() -> AsyncIterator[Callable[..., Any]]:
    stack: list[tuple[asyncio.Server, httpx.AsyncClient, Gateway]] = []

    async def make(routes: RouteTable | None = None, **kwargs: Any) -> Served:
        routes = routes or RouteTable()
        gateway = Gateway(routes, **kwargs)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        server = await start(gateway, sock)
        port = sock.getsockname()[1]
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0, limits=limits)
        stack.append((server, client, gateway))
        return Served(routes, gateway, client)

    yield make
    for server, client, gateway in stack:
        await client.aclose()
        server.close()
        await gateway.aclose()


async def _until(condition: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    """Await a condition set by another thread or task (checked every few ms, bounded)."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.002)
    assert condition(), what


@pytest.fixture
def until() -> Callable[..., Any]:
    return _until
