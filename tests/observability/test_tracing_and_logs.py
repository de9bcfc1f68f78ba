"""Tracing (W3C traceparent, one trace through gateway and model server, off = no SDK) and JSON logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import uvicorn
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pilothouse.observability.logs import REQUEST_ID, TRACE_ID, JsonFormatter, configure_logging, correlation
from pilothouse.observability.otel import otlp_traces_url
from pilothouse.observability.tracing import (
    TraceParent,
    TracingConfig,
    parse_traceparent,
    start_tracing,
)
from pilothouse.serving.gateway.proxy import Gateway
from pilothouse.serving.gateway.routes import RouteTable
from pilothouse.serving.gateway.tracing import GatewayTracing
from pilothouse.serving.loaders import load_model
from pilothouse.serving.modelserver.app import ModelServerApp

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE}-{SPAN}-01", TraceParent(int(TRACE, 16), int(SPAN, 16), 1)),
        (f"  00-{TRACE}-{SPAN}-00 ", TraceParent(int(TRACE, 16), int(SPAN, 16), 0)),
        (
            f"01-{TRACE}-{SPAN}-01-future",
            TraceParent(int(TRACE, 16), int(SPAN, 16), 1),
        ),  # later versions extend
        (f"00-{TRACE}-{SPAN}-01-extra", None),  # version 00 is exactly 55 characters
        (f"ff-{TRACE}-{SPAN}-01", None),
        (f"00-{'0' * 32}-{SPAN}-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE.upper()}-{SPAN}-01", None),
        (f"00-{TRACE[:-1]}-{SPAN}-01", None),
        ("", None),
        ("garbage", None),
    ],
)
def test_traceparent_parsing_follows_w3c(header: str, expected: TraceParent | None) -> None:
    assert parse_traceparent(header) == expected
    assert parse_traceparent(header.encode()) == expected
    if expected is not None:
        assert parse_traceparent(expected.header()) == expected


def test_tracing_is_off_without_configuration_and_the_model_server_never_imports_the_sdk() -> None:
    assert start_tracing("x", TracingConfig()) is None
    assert not TracingConfig.from_env({}).enabled
    assert TracingConfig.from_env({"PILOTHOUSE_OTLP_ENDPOINT": "http://c:4318"}).environment() == {
        "PILOTHOUSE_OTLP_ENDPOINT": "http://c:4318"
    }
    assert otlp_traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert otlp_traces_url("http://c:4318/custom/v1/traces") == "http://c:4318/custom/v1/traces"
    code = (
        "import sys; import pilothouse.serving.modelserver.cli, pilothouse.serving.modelserver.app, "
        "pilothouse.serving.gateway.proxy; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


async def _traced_request(model_path: Path, exporter: InMemorySpanExporter, traceparent: str | None) -> int:
    server_tracing = start_tracing("pilothouse-modelserver", TracingConfig(), exporter=exporter)
    gateway_tracing = start_tracing("pilothouse-gateway", TracingConfig(), exporter=exporter)
    assert server_tracing is not None and gateway_tracing is not None
    app = ModelServerApp("iris", load_model(str(model_path), "sklearn"), tracer=server_tracing.requests)
    sock = _listening()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve([sock]))
    routes = RouteTable()
    gateway = Gateway(routes, tracing=GatewayTracing(gateway_tracing.requests))
    routes.attach(asyncio.get_running_loop())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        routes.publish("team", "iris", [f"http://127.0.0.1:{sock.getsockname()[1]}"])
        body = orjson.dumps(
            {
                "inputs": [
                    {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]]}
                ]
            }
        )
        headers = [(b"content-type", b"application/json")]
        if traceparent is not None:
            headers.append((b"traceparent", traceparent.encode()))
        status, _, _ = await gateway.handle(b"POST", b"/team/iris/v2/models/iris/infer", b"", headers, body)
        return status
    finally:
        server.should_exit = True
        await serving
        await gateway.aclose()
        sock.close()
        server_tracing.shutdown()
        gateway_tracing.shutdown()


@pytest.mark.parametrize("incoming", [None, f"00-{TRACE}-{SPAN}-01"])
def test_one_request_through_gateway_and_model_server_is_one_trace(
    iris_model: Path, incoming: str | None
) -> None:
    exporter = InMemorySpanExporter()
    assert asyncio.run(_traced_request(iris_model, exporter, incoming)) == 200
    spans = {s.resource.attributes["service.name"]: s for s in exporter.get_finished_spans()}
    gateway, server = spans["pilothouse-gateway"], spans["pilothouse-modelserver"]
    assert gateway.context is not None and server.context is not None and server.parent is not None
    assert gateway.context.trace_id == server.context.trace_id
    assert server.parent.span_id == gateway.context.span_id
    if incoming is None:
        assert gateway.parent is None
    else:
        assert gateway.parent is not None and gateway.parent.is_remote
        assert gateway.context.trace_id == int(TRACE, 16) and gateway.parent.span_id == int(SPAN, 16)
    assert gateway.name == "gateway team/iris" and server.name == "infer iris"
    assert (gateway.attributes or {})["http.response.status_code"] == 200
    assert (server.attributes or {})["http.response.status_code"] == 200


def test_json_formatter_writes_flat_lines_with_ids() -> None:
    formatter = JsonFormatter({"service": "svc", "replica": ""})
    record = logging.LogRecord("pilothouse.x", logging.ERROR, __file__, 1, "failed %s", ("here",), None)
    doc = json.loads(formatter.format(record))
    assert doc.keys() == {"time", "level", "logger", "message", "service"}
    assert doc["message"] == "failed here" and doc["level"] == "error" and doc["time"].endswith("Z")
    token = REQUEST_ID.set("r-1"), TRACE_ID.set(TRACE)
    try:
        doc = json.loads(formatter.format(record))
    finally:
        REQUEST_ID.reset(token[0])
        TRACE_ID.reset(token[1])
    assert (doc["request_id"], doc["trace_id"]) == ("r-1", TRACE)
    record.request_id = "explicit"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    doc = json.loads(formatter.format(record))
    assert doc["request_id"] == "explicit" and "ValueError: boom" in doc["exception"]


def test_configure_logging_json_and_correlation_of_request_headers() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "json", static={"service": "t"}, stream=stream)
        logging.getLogger("pilothouse.t").info(
            "hello", extra=correlation([(b"X-Request-Id", b"abc")], "oip-id")
        )
        logging.getLogger("pilothouse.t").debug("hidden")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["request_id"] == "abc"
    headers = [(b"traceparent", f"00-{TRACE}-{SPAN}-01".encode())]
    assert correlation(headers, "oip-id") == {"trace_id": TRACE, "request_id": "oip-id"}
    assert correlation([(b"traceparent", b"bad")]) == {}
