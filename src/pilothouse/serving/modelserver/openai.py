"""OpenAI-compatible ``POST /v1/embeddings`` request decoding and response encoding.

Request: ``{"input": "text" | ["a", "b"], "model"?: str, "encoding_format"?: "float" | "base64",
"dimensions"?: int, "user"?: str}``. ``model`` may be omitted; when given it must be this server's
model name (404 otherwise, as the OIP routes answer). Token-id inputs (lists of integers) are not
supported. ``usage.prompt_tokens`` counts the tokens each input was embedded from, ``[CLS]``/``[SEP]``
included, after truncation to the model's maximum sequence length. ``base64`` is the little-endian
float32 bytes of each vector, as OpenAI sends it.

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` so OpenAI clients show
the message.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from pilothouse.serving.modelserver.protocol import RequestError

#: OpenAI's own limit on inputs per request.
MAX_INPUTS = 2048
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY


class OpenAIRequestError(RequestError):
    """A client error on an OpenAI route; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message, status)
        self.param = param
        self.code = code


@dataclass(slots=True)
class EmbeddingsRequest:
    texts: list[str]
    encoding_format: str


def decode_embeddings_request(body: bytes, model_name: str, dimension: int) -> EmbeddingsRequest:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OpenAIRequestError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise OpenAIRequestError("request body must be a JSON object with an 'input' field")
    if "input" not in obj:
        raise OpenAIRequestError("'input' is required: a string or a list of strings to embed", param="input")
    raw = obj["input"]
    texts: list[str]
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list):
        if not raw:
            raise OpenAIRequestError("'input' must not be an empty list", param="input")
        if not all(isinstance(t, str) for t in raw):
            raise OpenAIRequestError(
                "'input' must be a string or a list of strings (token-id arrays are not supported)",
                param="input",
            )
        texts = raw
    else:
        raise OpenAIRequestError(
            f"'input' must be a string or a list of strings, got {type(raw).__name__}", param="input"
        )
    if len(texts) > MAX_INPUTS:
        raise OpenAIRequestError(f"'input' has {len(texts)} items; at most {MAX_INPUTS} per request", "input")
    if any(not t for t in texts):
        raise OpenAIRequestError("'input' must not contain empty strings", param="input")
    model = obj.get("model")
    if model is not None and model != model_name:
        raise OpenAIRequestError(
            f"model '{model}' not found; this server serves '{model_name}'",
            param="model",
            status=404,
            code="model_not_found",
        )
    encoding_format = obj.get("encoding_format", "float")
    if encoding_format is None:
        encoding_format = "float"
    if encoding_format not in ("float", "base64"):
        raise OpenAIRequestError(
            f"'encoding_format' must be 'float' or 'base64', got {encoding_format!r}", param="encoding_format"
        )
    dimensions = obj.get("dimensions")
    if dimensions is not None and dimensions != dimension:
        raise OpenAIRequestError(
            f"this model produces {dimension}-dimensional embeddings; 'dimensions' must be {dimension} or omitted",
            param="dimensions",
        )
    return EmbeddingsRequest(texts, encoding_format)


def encode_embeddings_response(
    model_name: str, vectors: np.ndarray[Any, Any], encoding_format: str, prompt_tokens: int
) -> bytes:
    data: list[dict[str, Any]]
    if encoding_format == "base64":
        little = np.ascontiguousarray(vectors, dtype="<f4")
        data = [
            {"object": "embedding", "index": i, "embedding": base64.b64encode(row.tobytes()).decode("ascii")}
            for i, row in enumerate(little)
        ]
    else:
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    body = {
        "object": "list",
        "data": data,
        "model": model_name,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
    return orjson.dumps(body, option=_DUMPS_OPTS)


def openai_error_body(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def models_body(model_name: str, created: int) -> bytes:
    """``GET /v1/models``: the one model this server serves."""
    return orjson.dumps(
        {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": created, "owned_by": "pilothouse"}],
        }
    )
