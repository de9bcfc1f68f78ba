"""User Python class loader: a ``.py`` file imported by path.

The class named by ``--class-name`` is instantiated with no arguments; if it has a ``load()``
method that is called once (the place to read weights), then ``predict(array)`` serves requests.
It may return an array (or anything ``numpy.asarray`` accepts) or a dict of output name to array.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pilothouse.serving.loaders.base import (
    Array,
    ModelLoadError,
    Prediction,
    TensorSpec,
    one_line,
    require_file,
)


class PythonModel:
    platform = "python"

    def __init__(self, instance: Any):
        self.instance = instance
        self._predict = instance.predict
        self.inputs: tuple[TensorSpec, ...] = ()
        self.outputs: tuple[TensorSpec, ...] = ()

    def predict(self, x: Array) -> Prediction:
        result = self._predict(x)
        if isinstance(result, np.ndarray):
            return result
        if isinstance(result, dict):
            return {str(k): np.asarray(v) for k, v in result.items()}
        return np.asarray(result)


class PythonLoader:
    def __init__(self, class_name: str = "Model"):
        self.class_name = class_name

    def load(self, path: Path) -> PythonModel:
        require_file(path)
        if path.suffix != ".py":
            raise ModelLoadError(f"{path} is not a Python model (expected a .py file)")
        digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:12]
        module_name = f"pilothouse_user_model_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ModelLoadError(f"{path} is not a Python model (cannot import it)")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise ModelLoadError(
                f"{path}: importing the model module failed: {type(exc).__name__}: {one_line(str(exc))}"
            ) from exc
        cls = getattr(module, self.class_name, None)
        if not isinstance(cls, type):
            raise ModelLoadError(f"{path} has no class {self.class_name!r}")
        try:
            instance = cls()
            load = getattr(instance, "load", None)
            if callable(load):
                load()
        except Exception as exc:
            raise ModelLoadError(
                f"{path}: {self.class_name}.load() failed: {type(exc).__name__}: {one_line(str(exc))}"
            ) from exc
        if not callable(getattr(instance, "predict", None)):
            raise ModelLoadError(f"{path}: class {self.class_name!r} has no predict(self, array) method")
        return PythonModel(instance)
