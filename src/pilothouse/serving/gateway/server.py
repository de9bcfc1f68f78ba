"""A small HTTP/1.1 server for the gateway: an asyncio protocol with httptools parsing (no ASGI layer).

uvicorn turns every request into a scope dict and ``receive``/``send`` message dicts and goes through
its own flow control; for a proxy that buffers small inference requests, that machinery costs about as
much as the forwarding itself. Here a parsed request goes straight to :meth:`Gateway.handle` and the
response is one ``transport.write``. httptools (llhttp) does all the parsing; keep-alive, pipelining
(answered in order), ``Expect: 100-continue`` and HTTP/1.0 are handled, upgrades are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from typing import Protocol, cast

import httptools

from pilothouse.serving.gateway.proxy import STATUS_LINES, Gateway, Response
from pilothouse.serving.gateway.upstream import Headers

log = logging.getLogger(__name__)

_MAX_PIPELINED = 16
_Request = tuple[bytes, bytes, bytes, Headers, bytes, bool]


class Handler(Protocol):
    async def handle(
        self, method: bytes, path: bytes, query: bytes, headers: Headers, body: bytes
    ) -> Response:
        """Answer one request (``path`` raw, ``query`` without ``?``)."""
        ...


class _HttpProtocol(asyncio.Protocol):
    __slots__ = ("_body", "_expect", "_headers", "_url", "gateway", "parser", "pending", "task", "transport")

    def __init__(self, gateway: Handler) -> None:
        self.gateway = gateway
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[_Request] = deque()
        self.task: asyncio.Task[None] | None = None
        self._url = b""
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._expect = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pending.clear()
        if self.task is not None:
            self.task.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        except httptools.HttpParserError:
            self._reject(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    def _reject(self, response: bytes) -> None:
        if self.transport is not None:
            self.transport.write(response)
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._expect = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        if len(name) == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self._expect = True

    def on_headers_complete(self) -> None:
        if self._expect and self.transport is not None and self.parser.get_http_version() == "1.1":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        url = self._url
        q = url.find(b"?")
        path, query = (url, b"") if q < 0 else (url[:q], url[q + 1 :])
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request = (
            self.parser.get_method(),
            path,
            query,
            self._headers,
            body,
            self.parser.should_keep_alive(),
        )
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._serve(request))
        else:
            self.pending.append(request)
            if len(self.pending) >= _MAX_PIPELINED and self.transport is not None:
                self.transport.pause_reading()

    async def _serve(self, request: _Request) -> None:
        gateway = self.gateway
        while True:
            method, path, query, headers, body, keep_alive = request
            try:
                status, out_headers, out_body = await gateway.handle(method, path, query, headers, body)
            except asyncio.CancelledError:
                return
            except Exception:
                log.exception("gateway failed on %s %s", method, path)
                status, out_headers, out_body = 500, [], b'{"error":"internal gateway error"}'
            transport = self.transport
            if transport is None:
                return
            parts = [STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode()]
            for name, value in out_headers:
                parts += (name, b": ", value, b"\r\n")
            if method == b"HEAD":
                parts += (b"content-length: 0\r\n",)
            else:
                parts += (b"content-length: ", str(len(out_body)).encode(), b"\r\n")
            parts += (b"\r\n" if keep_alive else b"connection: close\r\n\r\n", out_body)
            transport.write(b"".join(parts))
            if not keep_alive:
                transport.close()
                self.task = None
                return
            if not self.pending:
                self.task = None
                return
            request = self.pending.popleft()
            if len(self.pending) < _MAX_PIPELINED // 2:
                transport.resume_reading()


async def serve(gateway: Gateway, sock: socket.socket, *, stop: asyncio.Event | None = None) -> None:
    """Serve ``gateway`` on the listening socket ``sock`` until ``stop`` is set (or forever)."""
    server = await start(gateway, sock)
    try:
        if stop is None:
            await asyncio.Future()
        else:
            await stop.wait()
    finally:
        server.close()
        await gateway.aclose()


async def start(handler: Handler, sock: socket.socket) -> asyncio.Server:
    """Start serving ``handler`` (the gateway, or its admin API) on ``sock``; close the server to stop."""
    loop = asyncio.get_running_loop()
    if isinstance(handler, Gateway):
        handler.routes.attach(loop)
    return await loop.create_server(lambda: _HttpProtocol(handler), sock=sock, backlog=2048)
