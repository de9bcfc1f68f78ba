"""Request ids and trace ids for the control plane's logs: a tiny pure-ASGI middleware.

Each API request gets an id — the caller's ``x-request-id`` when it sent a sane one, else a fresh one —
echoed in the response's ``x-request-id``. The id, and the trace id of a valid ``traceparent``, sit in
context variables (:mod:`pilothouse.observability.logs`) for the request's duration, so every log line
written while serving it (JSON format) carries them; FastAPI copies the context into its worker threads.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pilothouse.observability.logs import REQUEST_ID, TRACE_ID
from pilothouse.observability.tracing import header_value, parse_traceparent

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MAX_ID = 128


def _request_id(given: bytes | None) -> str:
    if given and len(given) <= _MAX_ID and given.isascii() and given.decode().isprintable():
        return given.decode()
    return uuid.uuid4().hex


class CorrelationMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        request_id = _request_id(header_value(headers, b"x-request-id"))
        traceparent = header_value(headers, b"traceparent")
        parent = parse_traceparent(traceparent) if traceparent else None
        rid_token = REQUEST_ID.set(request_id)
        tid_token = TRACE_ID.set(f"{parent.trace_id:032x}" if parent else None)
        echo = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), echo]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(rid_token)
            TRACE_ID.reset(tid_token)
