"""The gateway's upstream client: pooled keep-alive HTTP/1.1 connections, responses parsed by httptools.

Why not aiohttp's ``ClientSession``: per request it builds request/response objects, a timer context,
cookie and redirect handling and a trace context — measured, that was most of the gateway's cost per
forwarded request. Here a request is one pre-serialised ``bytes`` write on an idle connection and
the response is collected by httptools (llhttp) callbacks; nothing is parsed by hand.

Failure semantics, which the retry rule depends on:

- :class:`ConnectFailed` — no connection could be made, so the request was never sent; the caller may
  retry it on another replica.
- :class:`UpstreamTimeout` — no complete response within the timeout; the connection is closed.
- :class:`UpstreamBroken` — the connection broke or the response was malformed after the request was
  written. Never retried: the replica may have acted on it.

Idle connections are reused LIFO and dropped after ``idle_timeout`` (below uvicorn's 5 s keep-alive)
so a reused connection is rarely one the replica is closing at that moment.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast
from urllib.parse import urlsplit

import httptools

Headers = list[tuple[bytes, bytes]]


class ConnectFailed(Exception):
    """The replica could not be connected to; the request was not sent."""


class UpstreamTimeout(Exception):
    """The replica did not answer in time."""


class UpstreamBroken(Exception):
    """The connection failed after the request was sent."""


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_headers",
        "closed",
        "head_only",
        "idle_since",
        "parser",
        "pool",
        "transport",
        "waiter",
    )

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, Headers, bytes, bool]] | None = None
        self._headers: Headers = []
        self._body: list[bytes] = []
        self.closed = False
        self.head_only = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBroken(f"malformed response: {exc}"))

    def eof_received(self) -> bool | None:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamBroken("connection closed by the replica"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._headers = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.head_only:  # a HEAD response has no body whatever its content-length says
            self._finish(False)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._finish(self.parser.should_keep_alive())

    def _finish(self, keep_alive: bool) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            waiter.set_result((self.parser.get_status_code(), self._headers, body, keep_alive))

    def _fail(self, exc: Exception) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            waiter.set_exception(exc)
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def on_timeout(self) -> None:
        self._fail(UpstreamTimeout())


class ConnectionPool:
    """Keep-alive connections to one replica (``http://host:port[/prefix]``)."""

    def __init__(
        self, url: str, *, connect_timeout: float = 5.0, idle_timeout: float = 3.0, max_idle: int = 256
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host:port replicas are supported, got {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/").encode("latin-1")
        self.host_header = parts.netloc.encode("latin-1")
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self.idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        return conn

    def _idle_connection(self) -> _Connection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed and time.monotonic() - conn.idle_since < self.idle_timeout:
                return conn
            conn._fail(UpstreamBroken("idle"))
        return None

    async def request(
        self, method: bytes, target: bytes, headers: Headers, body: bytes, timeout: float
    ) -> tuple[int, Headers, bytes]:
        """Send one request; ``target`` is the path (+ ``?query``) below the replica's base URL."""
        conn = self._idle_connection() or await self._connect()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, Headers, bytes, bool]] = loop.create_future()
        conn.waiter = waiter
        conn.head_only = method == b"HEAD"
        parts = [
            method, b" ", self.prefix, target, b" HTTP/1.1\r\nhost: ", self.host_header,
            b"\r\ncontent-length: ", str(len(body)).encode(), b"\r\n",
        ]  # fmt: skip
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts += (b"\r\n", body)
        assert conn.transport is not None
        conn.transport.write(b"".join(parts))
        timer = loop.call_later(timeout, conn.on_timeout)
        try:
            status, out_headers, out_body, keep_alive = await waiter
        except asyncio.CancelledError:
            conn._fail(UpstreamBroken("cancelled"))  # the response is still coming: unusable
            raise
        finally:
            timer.cancel()
        if keep_alive and not conn.closed and len(self.idle) < self.max_idle:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        elif not conn.closed:
            conn.closed = True
            assert conn.transport is not None
            conn.transport.close()
        return status, out_headers, out_body

    def close(self) -> None:
        for conn in self.idle:
            conn._fail(UpstreamBroken("pool closed"))
        self.idle.clear()
