"""The model server's raw ASGI application.

No framework: routing is one dict lookup on ``(method, path)`` because the route table is tiny and
fully known once the model name is. Every response that does not depend on the request (server and
model metadata, health) is serialised once at construction. The infer path does only the work in
:mod:`.protocol`, the model's ``predict``, and two metric updates.

``predict`` runs inline on the event loop: for the small, CPU-bound models this server targets a
thread hop costs more than it buys (one worker, the GIL). The price is that a slow prediction
delays health checks queued behind it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from pilothouse import __version__
from pilothouse.serving.loaders.base import LoadedModel
from pilothouse.serving.modelserver.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from pilothouse.serving.modelserver.metrics import ModelMetrics
from pilothouse.serving.modelserver.protocol import (
    RequestError,
    decode_infer_request,
    encode_infer_response,
    error_body,
    select_outputs,
)

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
        metrics: ModelMetrics | None = None,
        load_seconds: float | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ):
        self.name = name
        self.model = model
        self.metrics = metrics if metrics is not None else ModelMetrics(name)
        if load_seconds is not None:
            self.metrics.set_load_duration(load_seconds)
        self.max_body_bytes = max_body_bytes
        self.ready = True
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
            await self._infer(scope, receive, send)
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
            if path == "/metrics":
                body = self.metrics.exposition()
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
            "/metrics": "GET",
            f"/v2/models/{self.name}": "GET",
            self._model_ready_path: "GET",
            self._infer_path: "POST",
        }
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
        try:
            prediction = self.model.predict(request.array)
        except (ValueError, TypeError) as exc:
            self.metrics.error("bad_request")
            return 400, error_body(f"input '{request.name}' rejected by the model: {exc}")
        except Exception as exc:
            log.exception("predict failed for model %s", self.name)
            self.metrics.error("predict")
            return 500, error_body(f"prediction failed: {type(exc).__name__}: {exc}")
        try:
            outputs = select_outputs(prediction, self._default_output, request.outputs)
            return 200, encode_infer_response(self.name, request.id, outputs)
        except RequestError as exc:
            self.metrics.error("bad_request")
            return exc.status, error_body(exc.message)
        except (TypeError, ValueError) as exc:
            log.exception("cannot encode the prediction of model %s", self.name)
            self.metrics.error("predict")
            return 500, error_body(f"cannot encode the model's output: {exc}")

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
