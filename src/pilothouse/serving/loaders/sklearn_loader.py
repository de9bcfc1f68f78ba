"""scikit-learn (joblib or plain pickle) loader.

``joblib.load`` reads both joblib dumps and ordinary pickles. Whatever comes out must have a
callable ``predict``; anything else (a dict, a text file, a truncated dump) is reported as
"is not a scikit-learn model" with the reason, never as a bare traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pilothouse.serving.datatypes import datatype_of
from pilothouse.serving.loaders.base import (
    Array,
    InvalidInputError,
    ModelLoadError,
    Prediction,
    TensorSpec,
    one_line,
    require_file,
)


class SklearnModel:
    """A fitted estimator; ``predict`` output is named ``output-0``."""

    platform = "sklearn"

    def __init__(self, estimator: object, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]):
        self._predict = estimator.predict  # type: ignore[attr-defined]
        self.estimator = estimator
        self.inputs = inputs
        self.outputs = outputs

    def predict(self, x: Array) -> Prediction:
        try:
            return np.asarray(self._predict(x))
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(one_line(str(exc))) from exc


class SklearnLoader:
    def load(self, path: Path) -> SklearnModel:
        require_file(path)
        import joblib

        try:
            obj = joblib.load(path)
        except Exception as exc:
            raise ModelLoadError(
                f"{path} is not a scikit-learn model (unpickling failed: {type(exc).__name__}: "
                f"{one_line(str(exc))})"
            ) from exc
        if not callable(getattr(obj, "predict", None)):
            raise ModelLoadError(
                f"{path} is not a scikit-learn model "
                f"(it holds a {type(obj).__name__}, which has no predict method)"
            )
        n_features = getattr(obj, "n_features_in_", None)
        width = int(n_features) if isinstance(n_features, int | np.integer) else -1
        inputs = (TensorSpec("input-0", "FP64", (-1, width)),)
        classes = getattr(obj, "classes_", None)
        out_type = datatype_of(classes.dtype) if isinstance(classes, np.ndarray) else "FP64"
        outputs = (TensorSpec("output-0", out_type or "FP64", (-1,)),)
        return SklearnModel(obj, inputs, outputs)
