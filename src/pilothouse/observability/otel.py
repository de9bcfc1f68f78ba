"""The OpenTelemetry SDK behind :class:`.tracing.RequestTracer`. Imported only when tracing is on.

A private ``TracerProvider`` per process (never the global one: no import-time or global side effects).
Spans are SERVER spans named after the route kind (``gateway <namespace>/<name>``, ``infer <model>``)
with HTTP semantic-convention attributes; 5xx responses set the span status to ERROR. Sampling is the
SDK default, parent-based always-on: a caller's "not sampled" flag is honoured and passed on.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from pilothouse import __version__
from pilothouse.observability.tracing import (
    Attributes,
    TraceParent,
    Tracing,
    TracingConfig,
    parse_traceparent,
)


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to a file as one JSON line (several processes may share the file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.context
            if ctx is None:
                continue
            lines.append(
                json.dumps(
                    {
                        "name": span.name,
                        "service": span.resource.attributes.get("service.name"),
                        "kind": span.kind.name,
                        "trace_id": f"{ctx.trace_id:032x}",
                        "span_id": f"{ctx.span_id:016x}",
                        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else None,
                        "start_time_unix_nano": span.start_time,
                        "end_time_unix_nano": span.end_time,
                        "status": span.status.status_code.name,
                        "attributes": dict(span.attributes or {}),
                    },
                    default=str,
                )
            )
        data = "".join(line + "\n" for line in lines)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:  # O_APPEND: one write per batch
            fh.write(data)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class _Span:
    __slots__ = ("_span", "span_id", "trace_id", "traceparent")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        ctx = span.get_span_context()
        self.traceparent = TraceParent(ctx.trace_id, ctx.span_id, int(ctx.trace_flags)).header()
        self.trace_id = f"{ctx.trace_id:032x}"
        self.span_id = f"{ctx.span_id:016x}"

    def end(self, status: int) -> None:
        span = self._span
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def fail(self, exc: BaseException) -> None:
        self._span.record_exception(exc)
        self._span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        self._span.end()


class SdkRequestTracer:
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start(self, name: str, traceparent: bytes | None, attributes: Attributes) -> _Span:
        parent = parse_traceparent(traceparent) if traceparent else None
        context = None
        if parent is not None:
            remote = SpanContext(
                parent.trace_id, parent.span_id, is_remote=True, trace_flags=TraceFlags(parent.flags)
            )
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        span = self._tracer.start_span(name, context=context, kind=SpanKind.SERVER, attributes=attributes)
        return _Span(span)


def otlp_traces_url(endpoint: str) -> str:
    """``http://collector:4318`` -> ``http://collector:4318/v1/traces``; a URL with a path is kept."""
    return endpoint if urlsplit(endpoint).path not in ("", "/") else endpoint.rstrip("/") + "/v1/traces"


def sdk_tracing(
    service_name: str,
    config: TracingConfig,
    *,
    instance: str | None = None,
    exporter: SpanExporter | None = None,
) -> Tracing:
    attributes: dict[str, str] = {"service.name": service_name, "service.version": __version__}
    if instance:
        attributes["service.instance.id"] = instance
    provider = TracerProvider(resource=Resource.create(attributes))
    if config.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        otlp = OTLPSpanExporter(endpoint=otlp_traces_url(config.otlp_endpoint))
        provider.add_span_processor(BatchSpanProcessor(otlp))
    if config.trace_file:
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(config.trace_file)))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("pilothouse", __version__)
    return Tracing(SdkRequestTracer(tracer), provider.shutdown)
