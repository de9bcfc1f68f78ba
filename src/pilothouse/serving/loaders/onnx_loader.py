"""ONNX loader (onnxruntime, CPU execution provider).

Input name and dtype come from the session, so requests may send FP64 to a float graph: the
array is cast once to what the graph wants. Only tensor outputs are served; non-tensor outputs
(e.g. the ZipMap "probabilities as a list of dicts" skl2onnx adds by default) are skipped, since
OIP has no way to express them and computing them would be wasted work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pilothouse.serving.datatypes import OIP_TO_NUMPY, ONNX_TYPE_TO_OIP
from pilothouse.serving.loaders.base import (
    Array,
    InvalidInputError,
    ModelLoadError,
    Prediction,
    TensorSpec,
    one_line,
    require_file,
)


def _dims(shape: list[Any]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)


class OnnxModel:
    platform = "onnxruntime_onnx"

    def __init__(self, session: Any, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]):
        self._session = session
        self._run = session.run
        self._input_name = inputs[0].name
        self._input_dtype = OIP_TO_NUMPY[inputs[0].datatype]
        self._output_names = [o.name for o in outputs]
        self.inputs = inputs
        self.outputs = outputs

    def predict(self, x: Array) -> Prediction:
        if x.dtype != self._input_dtype:
            try:
                x = x.astype(self._input_dtype)
            except (ValueError, TypeError) as exc:
                raise InvalidInputError(f"cannot cast {x.dtype} input to {self._input_dtype}: {exc}") from exc
        try:
            results = self._run(self._output_names, {self._input_name: x})
        except Exception as exc:
            # onnxruntime raises InvalidArgument / Fail for wrong rank, width or type.
            if type(exc).__name__ in ("InvalidArgument", "Fail", "InvalidGraph"):
                raise InvalidInputError(one_line(str(exc))) from exc
            raise
        return dict(zip(self._output_names, results, strict=True))


class OnnxLoader:
    def load(self, path: Path) -> OnnxModel:
        require_file(path)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; warnings about unused initialisers are noise
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelLoadError(
                f"{path} is not an ONNX model (onnxruntime could not load it: {one_line(str(exc))})"
            ) from exc
        graph_inputs = session.get_inputs()
        if len(graph_inputs) != 1:
            names = ", ".join(i.name for i in graph_inputs)
            raise ModelLoadError(f"{path}: only single-input ONNX graphs are supported (inputs: {names})")
        gi = graph_inputs[0]
        in_type = ONNX_TYPE_TO_OIP.get(gi.type)
        if in_type is None or in_type == "BYTES":
            raise ModelLoadError(f"{path}: unsupported ONNX input type {gi.type} for input {gi.name!r}")
        inputs = (TensorSpec(gi.name, in_type, _dims(gi.shape)),)
        outputs = tuple(
            TensorSpec(o.name, ONNX_TYPE_TO_OIP[o.type], _dims(o.shape))
            for o in session.get_outputs()
            if o.type in ONNX_TYPE_TO_OIP
        )
        if not outputs:
            raise ModelLoadError(f"{path}: the ONNX graph has no tensor outputs")
        return OnnxModel(session, inputs, outputs)
