"""One span per proxied request, continuing the caller's trace and passing it on upstream.

Only built when tracing is on (the embedded control plane passes a :class:`GatewayTracing` to
:class:`~.proxy.Gateway`; without one the request path pays a single ``is None`` test). The span is a
SERVER span named ``gateway <namespace>/<name>``: it continues the caller's ``traceparent`` (or starts a
trace), and the request goes upstream with *this* span's ``traceparent`` in place of the caller's, so the
model server's span is its child. ``tracestate`` is forwarded untouched, as W3C Trace Context asks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pilothouse.observability.tracing import RequestTracer, header_value
from pilothouse.serving.gateway.upstream import Headers

Response = tuple[int, Headers, bytes]


class GatewayTracing:
    def __init__(self, tracer: RequestTracer) -> None:
        self.tracer = tracer

    async def around(
        self,
        namespace: str,
        name: str,
        method: bytes,
        path: bytes,
        out: Headers,
        forward: Callable[[], Awaitable[Response]],
    ) -> Response:
        """Run ``forward`` inside a span; ``out`` (the upstream headers) gets the span's traceparent."""
        span = self.tracer.start(
            f"gateway {namespace}/{name}",
            header_value(out, b"traceparent"),
            {
                "http.request.method": method.decode("latin-1"),
                "url.path": path.decode("latin-1"),
                "pilothouse.namespace": namespace,
                "pilothouse.endpoint": name,
            },
        )
        out[:] = [(k, v) for k, v in out if k.lower() != b"traceparent"]
        out.append((b"traceparent", span.traceparent))
        try:
            response = await forward()
        except BaseException as exc:
            span.fail(exc)
            raise
        span.end(response[0])
        return response
