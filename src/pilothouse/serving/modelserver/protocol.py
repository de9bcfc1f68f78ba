"""Open Inference Protocol v2 request decoding and response encoding, without pydantic.

Per request this does exactly: one ``orjson.loads``, a handful of type checks, one
``numpy.array(data, dtype)``, and one ``orjson.dumps`` that serialises numpy arrays natively
(``OPT_SERIALIZE_NUMPY``), so output tensors are never converted to Python lists.
Every client mistake becomes a :class:`RequestError` naming the input and the problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from pilothouse.serving.datatypes import OIP_TO_NUMPY, datatype_of
from pilothouse.serving.loaders.base import Array, Prediction

_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY
# dtypes orjson serialises natively (C-contiguous arrays only).
_ORJSON_KINDS = frozenset("biuf")


class RequestError(Exception):
    """A client error; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(slots=True)
class InferRequest:
    id: str | None
    name: str
    array: Array
    outputs: list[str] | None


def _decode_input(obj: Any, index: int) -> tuple[str, Array]:
    if not isinstance(obj, dict):
        raise RequestError(f"inputs[{index}] must be an object with name, shape, datatype and data")
    name = obj.get("name")
    if not isinstance(name, str):
        raise RequestError(f"inputs[{index}]: 'name' must be a string")
    shape = obj.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(f"input '{name}': 'shape' must be a list of non-negative integers, got {shape!r}")
    datatype = obj.get("datatype")
    dtype = OIP_TO_NUMPY.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise RequestError(
            f"input '{name}': unsupported datatype {datatype!r} (expected one of {', '.join(OIP_TO_NUMPY)})"
        )
    data = obj.get("data")
    if not isinstance(data, list):
        raise RequestError(f"input '{name}': 'data' must be a list (flat or nested)")
    try:
        array = np.array(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError(f"input '{name}': data is not valid {datatype}: {exc}") from exc
    expected = math.prod(shape)
    if array.size != expected:
        raise RequestError(
            f"input '{name}': shape {shape} needs {expected} elements but data has {array.size}"
        )
    if datatype == "BYTES" and not all(isinstance(v, str | bytes) for v in array.flat):
        raise RequestError(f"input '{name}': BYTES data must be strings")
    return name, array.reshape(shape)


def decode_infer_request(body: bytes) -> InferRequest:
    """Parse and validate an OIP infer request body; raises :class:`RequestError`."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise RequestError("request body must be a JSON object with an 'inputs' list")
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("request must have a non-empty 'inputs' list")
    if len(inputs) != 1:
        raise RequestError(f"this model takes exactly one input tensor, the request has {len(inputs)}")
    name, array = _decode_input(inputs[0], 0)
    req_id = obj.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise RequestError("'id' must be a string")
    requested = obj.get("outputs")
    out_names: list[str] | None = None
    if requested is not None:
        if not isinstance(requested, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
        ):
            raise RequestError("'outputs' must be a list of objects with a 'name'")
        out_names = [o["name"] for o in requested]
    return InferRequest(req_id, name, array, out_names)


def _output_tensor(name: str, value: Any) -> dict[str, Any]:
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    datatype = datatype_of(array.dtype)
    if datatype is None:
        raise TypeError(f"output '{name}' has dtype {array.dtype}, which has no OIP datatype")
    data: Any
    if array.dtype.kind in _ORJSON_KINDS:
        data = np.ascontiguousarray(array).reshape(-1)
    else:
        data = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.flat]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def select_outputs(
    prediction: Prediction, default_name: str, requested: list[str] | None
) -> list[tuple[str, Any]]:
    """Name the prediction's arrays and keep only the ``requested`` ones (all when None)."""
    named = list(prediction.items()) if isinstance(prediction, Mapping) else [(default_name, prediction)]
    if requested is None:
        return named
    available = dict(named)
    missing = [n for n in requested if n not in available]
    if missing:
        raise RequestError(
            f"unknown output(s) {', '.join(missing)}; this model produces {', '.join(available)}"
        )
    return [(n, available[n]) for n in requested]


def encode_infer_response(model_name: str, req_id: str | None, outputs: list[tuple[str, Any]]) -> bytes:
    body: dict[str, Any] = {"model_name": model_name}
    if req_id is not None:
        body["id"] = req_id
    body["outputs"] = [_output_tensor(n, v) for n, v in outputs]
    return orjson.dumps(body, option=_DUMPS_OPTS)


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})
