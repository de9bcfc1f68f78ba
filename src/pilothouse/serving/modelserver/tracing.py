"""The model server's span per inference request, continuing the gateway's ``traceparent``.

Used only when tracing is on (``--otlp-endpoint``/``PILOTHOUSE_OTLP_ENDPOINT`` or
``PILOTHOUSE_TRACE_FILE``); otherwise :class:`~.app.ModelServerApp` has no tracer and its request path is
exactly what it was. While the span is open its ids sit in the log context variables, so an error
logged while serving the request carries the trace id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pilothouse.observability.logs import SPAN_ID, TRACE_ID
from pilothouse.observability.tracing import RequestTracer, header_value

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


async def traced(
    tracer: RequestTracer, name: str, handler: Handler, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve one request with ``handler`` inside a SERVER span named ``name``."""
    span = tracer.start(
        name,
        header_value(scope["headers"], b"traceparent"),
        {"http.request.method": scope["method"], "url.path": scope["path"]},
    )
    status = 0

    async def send_status(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    trace_token = TRACE_ID.set(span.trace_id)
    span_token = SPAN_ID.set(span.span_id)
    try:
        await handler(scope, receive, send_status)
    except BaseException as exc:
        span.fail(exc)
        raise
    finally:
        TRACE_ID.reset(trace_token)
        SPAN_ID.reset(span_token)
    span.end(status or 499)  # no response sent: the client went away (nginx's 499)
