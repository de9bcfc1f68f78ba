"""Tracing configuration and the W3C ``traceparent`` header, without importing OpenTelemetry.

One request through the platform is one trace: the gateway starts a span (continuing the caller's
``traceparent`` if it sent one), sends its own ``traceparent`` upstream, and the model server continues
that in a span of its own. Tracing is off unless an exporter is configured:

- ``PILOTHOUSE_OTLP_ENDPOINT`` (``up --otlp-endpoint``, ``modelserver --otlp-endpoint``): OTLP/HTTP
  (protobuf) to a collector; ``http://collector:4318`` gets ``/v1/traces`` appended;
- ``PILOTHOUSE_TRACE_FILE``: every finished span as one JSON line appended to that file (tests, demos).

Off means *no SDK at all*: :func:`start_tracing` returns None, callers keep ``None`` and their request
path pays one ``is None`` test. The OpenTelemetry SDK is imported (by :mod:`.otel`) only when on, so a
model server's cold start is unchanged by default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

OTLP_ENDPOINT_ENV = "PILOTHOUSE_OTLP_ENDPOINT"
TRACE_FILE_ENV = "PILOTHOUSE_TRACE_FILE"

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
Attributes = Mapping[str, str | int | float | bool]


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: int
    span_id: int
    flags: int

    def header(self) -> bytes:
        return b"00-%032x-%016x-%02x" % (self.trace_id, self.span_id, self.flags & 0xFF)


def parse_traceparent(value: bytes | str) -> TraceParent | None:
    """The W3C Trace Context ``traceparent`` header, or None when it is invalid (then a new trace starts).

    Version ``00`` must be exactly 55 characters; later versions may append fields (ignored); ``ff``
    and all-zero ids are invalid; hex must be lowercase.
    """
    raw = value.encode("latin-1") if isinstance(value, str) else value
    match = _TRACEPARENT.fullmatch(raw.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest is not None):
        return None
    parent = TraceParent(int(trace_id, 16), int(span_id, 16), int(flags, 16))
    return parent if parent.trace_id and parent.span_id else None


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lowercase) in raw ``(name, value)`` pairs."""
    for key, value in headers:
        if key == name or key.lower() == name:
            return value
    return None


@dataclass(frozen=True)
class TracingConfig:
    otlp_endpoint: str | None = None
    trace_file: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TracingConfig:
        return cls(environ.get(OTLP_ENDPOINT_ENV) or None, environ.get(TRACE_FILE_ENV) or None)

    @property
    def enabled(self) -> bool:
        return bool(self.otlp_endpoint or self.trace_file)

    def environment(self) -> dict[str, str]:
        """The variables that give a child process (a replica) the same configuration."""
        out = {}
        if self.otlp_endpoint:
            out[OTLP_ENDPOINT_ENV] = self.otlp_endpoint
        if self.trace_file:
            out[TRACE_FILE_ENV] = self.trace_file
        return out


class ActiveSpan(Protocol):
    """One server span in progress."""

    @property
    def traceparent(self) -> bytes:
        """This span as a ``traceparent`` value, to send upstream."""
        ...

    @property
    def trace_id(self) -> str: ...

    @property
    def span_id(self) -> str: ...

    def end(self, status: int) -> None:
        """Finish with an HTTP status (5xx marks the span as an error)."""
        ...

    def fail(self, exc: BaseException) -> None:
        """Finish with an exception the request path did not handle."""
        ...


class RequestTracer(Protocol):
    def start(self, name: str, traceparent: bytes | None, attributes: Attributes) -> ActiveSpan:
        """Start a SERVER span, the child of ``traceparent`` when that is valid, else a new trace's root."""
        ...


@dataclass(frozen=True)
class Tracing:
    """An initialised tracer provider: ``requests`` starts spans, ``shutdown`` flushes the exporters."""

    requests: RequestTracer
    shutdown: Callable[[], None]


def start_tracing(
    service_name: str,
    config: TracingConfig,
    *,
    instance: str | None = None,
    exporter: SpanExporter | None = None,
) -> Tracing | None:
    """Tracing for one process, or None when nothing is configured (and no ``exporter`` is given).

    ``exporter`` adds an exporter (tests pass the SDK's ``InMemorySpanExporter``); it is called
    synchronously, so a test sees a span as soon as its request is answered.
    """
    if not config.enabled and exporter is None:
        return None
    from pilothouse.observability.otel import sdk_tracing  # the SDK only when tracing is on

    return sdk_tracing(service_name, config, instance=instance, exporter=exporter)
