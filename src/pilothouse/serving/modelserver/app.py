"""The model server's raw ASGI application.

No framework: routing is one dict lookup on ``(method, path)`` because the route table is tiny and
fully known once the model name is. Every response that does not depend on the request (server and
model metadata, health) is serialised once at construction. The infer path does only the work in
:mod:`.protocol`, the model's ``predict``, and two metric updates.

``predict`` runs inline on the event loop: for the small, CPU-bound models this server targets a
thread hop costs more than it buys (one worker, the GIL). The price is that a slow prediction
delays health checks queued behind it.

With dynamic batching on (``max_batch_size``), infer requests go through a :class:`.batching.Batcher`
instead (it decides where predict runs; see its module). Models that embed text
(:class:`~pilothouse.serving.loaders.base.TextEmbedder`) also get the OpenAI-compatible
``POST /v1/embeddings`` and ``GET /v1/models`` (see :mod:`.openai`), through the same batcher.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from pilothouse import __version__
from pilothouse.observability.logs import correlation
from pilothouse.serving.loaders.base import LoadedModel, TextEmbedder
from pilothouse.serving.modelserver.batching import Batcher, Worker, default_worker
from pilothouse.serving.modelserver.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from pilothouse.serving.modelserver.metrics import ModelMetrics, NoMetrics
from pilothouse.serving.modelserver.openai import (
    OpenAIRequestError,
    decode_embeddings_request,
    encode_embeddings_response,
    models_body,
    openai_error_body,
)
from pilothouse.serving.modelserver.protocol import (
    RequestError,
    decode_infer_request,
    encode_infer_response,
    error_body,
    select_outputs,
)
from pilothouse.serving.modelserver.tracing import traced

if TYPE_CHECKING:
    from pilothouse.observability.tracing import RequestTracer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SERVER_NAME = "pilothouse-modelserver"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_JSON = b"application/json"

log = logging.getLogger("pilothouse.modelserver")


class _ClientGone(Exception):
    pass


def _headers(body: bytes, content_type: bytes = _JSON) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]


class ModelServerApp:
    """ASGI app serving exactly one loaded model under the OIP v2 REST routes."""

    def __init__(
        self,
        name: str,
        model: LoadedModel,
        *,
        metrics: ModelMetrics | NoMetrics | None = None,
        load_seconds: float | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch_size: int | None = None,
        max_batch_latency_ms: float = 5.0,
        batch_worker: Worker | None = None,
        tracer: RequestTracer | None = None,
    ):
        self.name = name
        self.tracer = tracer  # observability: None (tracing off) keeps the request path untouched
        self._span_name = f"infer {name}"
        self.model = model
        self.metrics = metrics if metrics is not None else ModelMetrics(name)
        #: ``NoMetrics`` (``--no-metrics``): nothing recorded, and ``/metrics`` is a 404
        self._exposed = self.metrics if isinstance(self.metrics, ModelMetrics) else None
        if load_seconds is not None:
            self.metrics.set_load_duration(load_seconds)
        self.max_body_bytes = max_body_bytes
        self.ready = True
        self.batcher: Batcher | None = None
        if max_batch_size is not None:
            self.batcher = Batcher(
                model.predict,
                max_batch_size,
                max_batch_latency_ms / 1000.0,
                observe_batch_size=self.metrics.observe_batch_size,
                worker=batch_worker or default_worker(model.platform),
            )
        self._embedder: TextEmbedder | None = model if isinstance(model, TextEmbedder) else None
        self._embeddings_path = "/v1/embeddings" if self._embedder is not None else None
        self._default_output = model.outputs[0].name if model.outputs else "output-0"
        prefix = f"/v2/models/{name}"
        self._infer_path = f"{prefix}/infer"
        self._model_ready_path = f"{prefix}/ready"
        server_meta = orjson.dumps({"name": SERVER_NAME, "version": __version__, "extensions": []})
        model_meta = orjson.dumps(
            {
                "name": name,
                "versions": [],
                "platform": model.platform,
                "inputs": [t.to_json() for t in model.inputs],
                "outputs": [t.to_json() for t in model.outputs],
            }
        )
        self._static: dict[str, tuple[bytes, list[tuple[bytes, bytes]]]] = {
            "/v2": (server_meta, _headers(server_meta)),
            prefix: (model_meta, _headers(model_meta)),
        }
        if self._embedder is not None:
            v1_models = models_body(name, int(time.time()))
            self._static["/v1/models"] = (v1_models, _headers(v1_models))
        live = orjson.dumps({"live": True})
        self._live = (live, _headers(live))
        self._ready_bodies = {
            "/v2/health/ready": (orjson.dumps({"ready": True}), orjson.dumps({"ready": False})),
            self._model_ready_path: (
                orjson.dumps({"name": name, "ready": True}),
                orjson.dumps({"name": name, "ready": False}),
            ),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "POST" and path == self._infer_path:
            if self.tracer is None:
                await self._infer(scope, receive, send)
            else:
                await traced(self.tracer, self._span_name, self._infer, scope, receive, send)
            return
        if path == self._embeddings_path and method == "POST":
            if self.tracer is None:
                await self._embeddings(scope, receive, send)
            else:
                await traced(self.tracer, f"embeddings {self.name}", self._embeddings, scope, receive, send)
            return
        if method == "GET":
            static = self._static.get(path)
            if static is not None:
                await _send(send, 200, static[0], static[1])
                return
            if path == "/v2/health/live":
                await _send(send, 200, *self._live)
                return
            bodies = self._ready_bodies.get(path)
            if bodies is not None:
                body = bodies[0] if self.ready else bodies[1]
                await _send(send, 200 if self.ready else 503, body, _headers(body))
                return
            if path == "/metrics" and self._exposed is not None:
                body = self._exposed.exposition()
                await _send(send, 200, body, _headers(body, METRICS_CONTENT_TYPE.encode()))
                return
        await self._not_found_or_not_allowed(method, path, send)

    async def _not_found_or_not_allowed(self, method: str, path: str, send: Send) -> None:
        if path.startswith("/v2/models/"):
            requested = path[len("/v2/models/") :].split("/", 1)[0]
            if requested != self.name:
                self.metrics.error("not_found")
                await _error(send, 404, f"model '{requested}' not found; this server serves '{self.name}'")
                return
        known = {
            "/v2": "GET",
            "/v2/health/live": "GET",
            "/v2/health/ready": "GET",
            f"/v2/models/{self.name}": "GET",
            self._model_ready_path: "GET",
            self._infer_path: "POST",
        }
        if self._exposed is not None:
            known["/metrics"] = "GET"
        if self._embedder is not None:
            known.update({"/v1/embeddings": "POST", "/v1/models": "GET"})
        allowed = known.get(path)
        if allowed is not None:
            body = error_body(f"method {method} not allowed on {path}; use {allowed}")
            await _send(send, 405, body, [*_headers(body), (b"allow", allowed.encode())])
            return
        await _error(send, 404, f"no route {path}")

    async def _infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        try:
            status, body = await self._infer_body(scope, receive)
        except _ClientGone:
            return
        await _send(send, status, body, _headers(body))
        self.metrics.record(status, time.perf_counter() - start)

    async def _infer_body(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        try:
            raw = await self._read_body(scope, receive)
            request = decode_infer_request(raw)
        except RequestError as exc:
            self.metrics.error("too_large" if exc.status == 413 else "bad_request")
            return exc.status, error_body(exc.message)
        batcher = self.batcher
        try:
            if batcher is None:
                prediction = self.model.predict(request.array)
            else:
                prediction = await batcher.predict(request.array)
        except (ValueError, TypeError) as exc:
            self.metrics.error("bad_request")
            return 400, error_body(f"input '{request.name}' rejected by the model: {exc}")
        except Exception as exc:
            log.exception(
                "predict failed for model %s", self.name, extra=correlation(scope["headers"], request.id)
            )
            self.metrics.error("predict")
            return 500, error_body(f"prediction failed: {type(exc).__name__}: {exc}")
        try:
            outputs = select_outputs(prediction, self._default_output, request.outputs)
            return 200, encode_infer_response(self.name, request.id, outputs)
        except RequestError as exc:
            self.metrics.error("bad_request")
            return exc.status, error_body(exc.message)
        except (TypeError, ValueError) as exc:
            log.exception(
                "cannot encode the prediction of model %s",
                self.name,
                extra=correlation(scope["headers"], request.id),
            )
            self.metrics.error("predict")
            return 500, error_body(f"cannot encode the model's output: {exc}")

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        try:
            status, body = await self._embeddings_body(scope, receive)
        except _ClientGone:
            return
        await _send(send, status, body, _headers(body))
        self.metrics.record(status, time.perf_counter() - start)

    async def _embeddings_body(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        embedder = self._embedder
        assert embedder is not None
        try:
            raw = await self._read_body(scope, receive)
            request = decode_embeddings_request(raw, self.name, embedder.dimension)
        except OpenAIRequestError as exc:
            self.metrics.error("not_found" if exc.status == 404 else "bad_request")
            return exc.status, openai_error_body(
                exc.message, param=exc.param, code=exc.code, status=exc.status
            )
        except RequestError as exc:
            self.metrics.error("too_large" if exc.status == 413 else "bad_request")
            return exc.status, openai_error_body(exc.message, status=exc.status)
        texts = np.array(request.texts, dtype=object)
        batcher = self.batcher
        try:
            if batcher is None:
                vectors = self.model.predict(texts)
            else:
                vectors = await batcher.predict(texts)
            tokens = sum(embedder.count_tokens(request.texts))
        except (ValueError, TypeError) as exc:
            self.metrics.error("bad_request")
            return 400, openai_error_body(f"input rejected by the model: {exc}", param="input")
        except Exception as exc:
            log.exception("embedding failed for model %s", self.name, extra=correlation(scope["headers"]))
            self.metrics.error("predict")
            message = f"embedding failed: {type(exc).__name__}: {exc}"
            return 500, openai_error_body(message, status=500)
        if not isinstance(vectors, np.ndarray):
            self.metrics.error("predict")
            return 500, openai_error_body("the model did not return one array of embeddings", status=500)
        return 200, encode_embeddings_response(self.name, vectors, request.encoding_format, tokens)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_body_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                if value.isdigit() and int(value) > limit:
                    raise RequestError(f"request body is larger than {limit} bytes", status=413)
                break
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            return body
        chunks = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(f"request body is larger than {limit} bytes", status=413)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, status: int, message: str) -> None:
    body = error_body(message)
    await _send(send, status, body, _headers(body))
