"""Open Inference Protocol v2 tensor datatypes <-> numpy dtypes.

Shared by the loaders (to describe model inputs/outputs) and the model server (to decode and
encode tensors), so it lives beside both and imports nothing but numpy.
"""

from __future__ import annotations

import numpy as np

#: OIP datatype name -> numpy dtype used to decode request data.
OIP_TO_NUMPY: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

_KIND_SIZE_TO_OIP: dict[tuple[str, int], str] = {
    (dt.kind, dt.itemsize): name for name, dt in OIP_TO_NUMPY.items() if name != "BYTES"
}


def datatype_of(dtype: np.dtype[np.generic]) -> str | None:
    """The OIP datatype for a numpy dtype; strings, bytes and objects are ``BYTES``; None if unmappable."""
    if dtype.kind in "USO":
        return "BYTES"
    return _KIND_SIZE_TO_OIP.get((dtype.kind, dtype.itemsize))


#: ONNX tensor element type strings (as onnxruntime reports them) -> OIP datatype.
ONNX_TYPE_TO_OIP: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
