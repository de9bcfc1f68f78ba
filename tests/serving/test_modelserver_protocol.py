"""OIP tensor decoding/encoding properties, and the model server's import hygiene."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilothouse.serving.datatypes import OIP_TO_NUMPY, datatype_of
from pilothouse.serving.modelserver.protocol import (
    RequestError,
    decode_infer_request,
    encode_infer_response,
    select_outputs,
)

NUMERIC = [name for name in OIP_TO_NUMPY if name not in ("BYTES", "BOOL", "FP16")]


@pytest.mark.parametrize("name", list(OIP_TO_NUMPY))
def test_every_oip_datatype_maps_back_to_itself(name: str) -> None:
    assert datatype_of(OIP_TO_NUMPY[name]) == name


def test_string_dtypes_are_bytes_and_unmappable_is_none() -> None:
    assert datatype_of(np.dtype("<U5")) == "BYTES"
    assert datatype_of(np.dtype("S3")) == "BYTES"
    assert datatype_of(np.dtype(np.complex128)) is None


@settings(max_examples=60, deadline=None)
@given(
    datatype=st.sampled_from(NUMERIC),
    shape=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=3),
    data=st.data(),
)
def test_decode_then_encode_round_trips(datatype: str, shape: list[int], data: st.DataObject) -> None:
    size = int(np.prod(shape))
    dtype = OIP_TO_NUMPY[datatype]
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    lo, hi = (int(info.min), int(info.max)) if info else (-1000, 1000)
    values = data.draw(st.lists(st.integers(min_value=lo, max_value=hi), min_size=size, max_size=size))
    body = orjson.dumps({"inputs": [{"name": "t", "shape": shape, "datatype": datatype, "data": values}]})
    req = decode_infer_request(body)
    assert req.array.dtype == dtype
    assert list(req.array.shape) == shape
    out = orjson.loads(encode_infer_response("m", None, select_outputs(req.array, "o", None)))
    assert out["outputs"] == [{"name": "o", "datatype": datatype, "shape": shape, "data": values}]


def test_bytes_and_bool_tensors() -> None:
    body = b'{"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}'
    req = decode_infer_request(body)
    out = orjson.loads(
        encode_infer_response("m", "i", [("o", np.array(["x", "y"])), ("b", np.array([True]))])
    )
    assert req.array.tolist() == ["a", "b"]
    assert out["outputs"][0] == {"name": "o", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]}
    assert out["outputs"][1] == {"name": "b", "datatype": "BOOL", "shape": [1], "data": [True]}
    with pytest.raises(RequestError, match="BYTES data must be strings"):
        decode_infer_request(b'{"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES", "data": [1]}]}')


FORBIDDEN = ("fastapi", "sqlalchemy", "pydantic", "pilothouse.store", "pilothouse.controllers",
             "pilothouse.runtime", "pilothouse.server", "pilothouse.client", "pilothouse.api")  # fmt: skip


def test_model_server_imports_nothing_from_the_control_plane() -> None:
    code = (
        "import sys\n"
        "import pilothouse.serving.modelserver.cli, pilothouse.serving.modelserver.app\n"
        "import pilothouse.serving.loaders.sklearn_loader, pilothouse.serving.loaders.onnx_loader\n"
        "import pilothouse.serving.loaders.python_loader, uvicorn\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
