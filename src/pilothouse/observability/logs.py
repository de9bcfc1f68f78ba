"""Structured logs: one JSON object per line, with the request id and trace id of the request at hand.

Humans get the familiar text lines by default; ``--log-format json`` (``PILOTHOUSE_LOG_FORMAT=json``)
switches a process to JSON lines for a log pipeline. The field names are fixed and flat::

    {"time": "2025-01-02T03:04:05.678Z", "level": "error", "logger": "pilothouse.modelserver",
     "message": "predict failed ...", "service": "pilothouse-modelserver", "replica": "iris-1-x7k2p",
     "request_id": "...", "trace_id": "<32 hex>", "span_id": "<16 hex>", "exception": "Traceback ..."}

The ids come from the record (``extra={"request_id": ...}``) or, failing that, from the context
variables the request path sets (:data:`REQUEST_ID`, :data:`TRACE_ID`), so code that logs need not know
about them. Fields without a value are left out rather than written as ``null``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Literal, TextIO

from pilothouse.observability.tracing import parse_traceparent

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
#: Environment variable that switches a process (the control plane's replicas inherit it) to JSON logs.
LOG_FORMAT_ENV = "PILOTHOUSE_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

REQUEST_ID: ContextVar[str | None] = ContextVar("pilothouse_request_id", default=None)
TRACE_ID: ContextVar[str | None] = ContextVar("pilothouse_trace_id", default=None)
SPAN_ID: ContextVar[str | None] = ContextVar("pilothouse_span_id", default=None)

_IDS = ("request_id", "trace_id", "span_id")
_VARS = {"request_id": REQUEST_ID, "trace_id": TRACE_ID, "span_id": SPAN_ID}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; ``static`` fields (service, replica) go on every line."""

    def __init__(self, static: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.static = {k: v for k, v in (static or {}).items() if v}

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        doc: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self.static,
        }
        for field in _IDS:
            value = getattr(record, field, None) or _VARS[field].get()
            if value:
                doc[field] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def log_format_from_env(environ: Mapping[str, str], default: LogFormat = "text") -> LogFormat:
    value = environ.get(LOG_FORMAT_ENV, "").strip().lower()
    return "json" if value == "json" else "text" if value == "text" else default


def configure_logging(
    level: str,
    fmt: LogFormat = "text",
    *,
    static: Mapping[str, str] | None = None,
    datefmt: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Replace the root logger's handlers with one stderr handler in ``fmt`` at ``level``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(static))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, datefmt=datefmt))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def correlation(headers: Iterable[tuple[bytes, bytes]], request_id: str | None = None) -> dict[str, str]:
    """``extra=`` for a log call about one request: its ``x-request-id`` (else ``request_id``, e.g. the
    inference request's own id) and the trace id of its ``traceparent``. For error paths only: it walks
    the headers."""
    out: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"x-request-id" and value:
            out["request_id"] = value[:128].decode("latin-1")
        elif lowered == b"traceparent":
            parent = parse_traceparent(value)
            if parent is not None:
                out["trace_id"] = f"{parent.trace_id:032x}"
    if "request_id" not in out and request_id:
        out["request_id"] = request_id
    return out
