"""The gateway: ``/{namespace}/{name}/<path>`` is forwarded to ``<replica>/<path>``.

:meth:`Gateway.handle` is the whole request path, independent of the HTTP server in front of it:

- ``Gateway`` is an ASGI app (``await gateway(scope, receive, send)``), so it still runs on uvicorn, e.g.
  inside the embedded control plane;
- :func:`pilothouse.serving.gateway.server.serve` runs it on a small asyncio protocol with httptools
  parsing (no ASGI message dicts, no per-request scope) — the fast path used by
  ``python -m pilothouse.serving.gateway``.

Status codes the gateway produces itself (JSON ``{"error": ...}`` bodies):

====  ==============================================================================================
404   no endpoint at that path (never published, or withdrawn)
503   no ready replica and the route does not ``hold`` (``Retry-After: 1``); every replica refused the
      connection; or the endpoint queue is full (``Retry-After: 1``) — held requests and requests
      waiting for a free concurrency slot share the one bounded queue, and a full queue is the
      server's capacity problem, not a client rate limit, hence 503 rather than 429
504   waited ``queue_timeout`` in the queue without getting a replica; or the replica did not answer
      within ``timeout``
502   the connection to the replica broke after the request was sent, or its response was malformed
====  ==============================================================================================

A request is retried on another replica only when the connection could not be made (the request was
never sent); never after a response, an error status, a timeout or a broken connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest

from pilothouse.serving.gateway.routes import Endpoint, OnDemand, Rejected, RouteTable
from pilothouse.serving.gateway.traffic import GatewayCollector
from pilothouse.serving.gateway.upstream import ConnectFailed, Headers, UpstreamBroken, UpstreamTimeout

if TYPE_CHECKING:
    from pilothouse.serving.gateway.tracing import GatewayTracing

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Response = tuple[int, Headers, bytes]

#: Not forwarded in either direction (RFC 9110 §7.6.1), plus what the gateway sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection",
        b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"host", b"content-length",
        b"expect",
    }
)  # fmt: skip
JSON = (b"content-type", b"application/json")
STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}


def error(status: int, message: str, retry_after: int | None = None) -> Response:
    headers = [JSON]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return status, headers, orjson.dumps({"error": message})


class Gateway:
    """Forwards requests by the routes in ``routes``; ``timeout`` bounds one upstream exchange."""

    def __init__(
        self,
        routes: RouteTable,
        *,
        timeout: float = 60.0,
        on_demand: OnDemand | None = None,
        max_connections: int | None = None,  # accepted for compatibility; connections are per replica
        tracing: GatewayTracing | None = None,
    ) -> None:
        self.routes = routes
        self.tracing = tracing  # observability: one span per proxied request when tracing is on
        self.timeout = timeout
        if on_demand is not None:
            routes.on_demand(on_demand)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GatewayCollector(routes.meters))

    async def aclose(self) -> None:
        self.routes.close()

    # -- the request path ----------------------------------------------------------------------------
    async def handle(
        self, method: bytes, path: bytes, query: bytes, headers: Headers, body: bytes
    ) -> Response:
        """Answer one request; ``path`` is the raw (still percent-encoded) path, ``query`` without ``?``."""
        slash = path.find(b"/", path.find(b"/", 1) + 1)  # the one after /{namespace}/{name}
        prefix = path if slash <= 0 else path[:slash]
        endpoint = self.routes.by_prefix(prefix)
        if endpoint is None:
            return self._local(path, prefix)
        started = time.perf_counter()
        target = (path[slash:] if slash > 0 else b"/") + (b"?" + query if query else b"")
        out = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        tracing = self.tracing
        if tracing is not None:  # observability: span + traceparent upstream (serving/gateway/tracing.py)
            return await tracing.around(
                endpoint.namespace,
                endpoint.name,
                method,
                path,
                out,
                lambda: self._forward(endpoint, method, target, out, body, started),
            )
        return await self._forward(endpoint, method, target, out, body, started)

    async def _forward(
        self, endpoint: Endpoint, method: bytes, target: bytes, out: Headers, body: bytes, started: float
    ) -> Response:
        tried: frozenset[str] = frozenset()
        while True:
            try:
                upstream = await endpoint.acquire(tried)
            except Rejected as exc:
                endpoint.meter.errors[exc.reason] += 1
                endpoint.answered(exc.status, time.perf_counter() - started)
                return error(exc.status, exc.message, exc.retry_after)
            status = 0
            try:
                status, resp_headers, resp_body = await upstream.pool.request(
                    method, target, out, body, self.timeout
                )
            except ConnectFailed:
                endpoint.meter.errors["connect"] += 1
                tried |= {upstream.url}
                continue
            except UpstreamTimeout:
                endpoint.meter.errors["timeout"] += 1
                status = 504
                return error(504, f"replica {upstream.url} did not answer within {self.timeout:g} s")
            except UpstreamBroken as exc:
                endpoint.meter.errors["upstream"] += 1
                status = 502
                return error(502, f"replica {upstream.url} failed: {exc}")
            finally:
                endpoint.release(upstream, status, time.perf_counter() - started)
            return status, [(k, v) for k, v in resp_headers if k.lower() not in HOP_BY_HOP], resp_body

    def _local(self, path: bytes, prefix: bytes) -> Response:
        if path == b"/healthz":
            return 200, [(b"content-type", b"text/plain")], b"ok"
        if path == b"/metrics":
            return 200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")], self.metrics()
        if prefix.count(b"/") != 2 or prefix.endswith(b"/") or prefix.startswith(b"//"):
            return error(404, "no endpoint in path: expected /{namespace}/{name}/...")
        return error(404, f"no ModelEndpoint {prefix[1:].decode('latin-1')}")

    def metrics(self) -> bytes:
        """Prometheus text exposition of every endpoint's meters."""
        return generate_latest(self.registry)

    # -- ASGI ------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.routes.attach(asyncio.get_running_loop())
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        path = scope.get("raw_path") or scope["path"].encode()
        status, headers, body = await self.handle(
            scope["method"].encode(), path, scope.get("query_string", b""), scope["headers"], b"".join(chunks)
        )
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.routes.attach(asyncio.get_running_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
