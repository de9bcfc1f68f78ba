"""Loaders against real model files: sklearn (joblib), ONNX (skl2onnx), and a user Python class."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import numpy as np
import pytest

from pilothouse.serving.loaders import (
    InvalidInputError,
    LoadedModel,
    ModelLoadError,
    TensorSpec,
    get_loader,
    load_model,
    resolve_model_path,
)

if TYPE_CHECKING:
    from conftest import IrisModel


def test_sklearn_loader_predicts_like_the_model(iris: IrisModel) -> None:
    loaded = load_model(str(iris.path), "sklearn")
    assert isinstance(loaded, LoadedModel)
    assert loaded.platform == "sklearn"
    assert loaded.inputs == (TensorSpec("input-0", "FP64", (-1, 4)),)
    assert loaded.outputs == (TensorSpec("output-0", "INT64", (-1,)),)
    out = loaded.predict(iris.X)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, iris.model.predict(iris.X))


def test_sklearn_loader_accepts_file_uri_and_plain_pickle(iris: IrisModel, tmp_path: Path) -> None:
    pickled = tmp_path / "model with space.pkl"
    pickled.write_bytes(pickle.dumps(iris.model))
    loaded = load_model(pickled.as_uri(), "sklearn")
    np.testing.assert_array_equal(loaded.predict(iris.X[:5]), iris.model.predict(iris.X[:5]))


def test_sklearn_wrong_width_is_an_input_error(iris: IrisModel) -> None:
    loaded = load_model(str(iris.path), "sklearn")
    with pytest.raises(InvalidInputError, match="features"):
        loaded.predict(np.zeros((1, 3)))


def test_sklearn_loader_rejects_non_models(tmp_path: Path) -> None:
    dumped = tmp_path / "dict.joblib"
    joblib.dump({"weights": [1, 2, 3]}, dumped)
    with pytest.raises(ModelLoadError, match=r"dict\.joblib is not a scikit-learn model \(it holds a dict"):
        load_model(str(dumped), "sklearn")
    text = tmp_path / "notes.txt"
    text.write_text("hello, I am not a model\n")
    with pytest.raises(ModelLoadError, match=r"notes\.txt is not a scikit-learn model \(unpickling failed"):
        load_model(str(text), "sklearn")
    missing = tmp_path / "missing.joblib"
    with pytest.raises(ModelLoadError, match=f"file not found: {missing}"):
        load_model(str(missing), "sklearn")
    with pytest.raises(ModelLoadError, match="not a regular file"):
        load_model(str(tmp_path), "sklearn")


def test_onnx_loader_uses_session_metadata(iris: IrisModel, iris_onnx: Path) -> None:
    loaded = load_model(str(iris_onnx), "onnx")
    assert loaded.platform == "onnxruntime_onnx"
    (spec,) = loaded.inputs
    assert spec.datatype == "FP32"
    assert spec.shape == (-1, 4)
    # The ZipMap probabilities output is not a tensor and is skipped.
    assert [o.name for o in loaded.outputs] == ["output_label"]
    out = loaded.predict(iris.X)  # FP64 in, cast to the graph's float
    assert isinstance(out, dict)
    np.testing.assert_array_equal(out["output_label"], iris.model.predict(iris.X))


def test_onnx_loader_without_zipmap_serves_probabilities(iris: IrisModel, tmp_path: Path) -> None:
    from skl2onnx import to_onnx

    onx = to_onnx(iris.model, iris.X[:1].astype(np.float32), options={"zipmap": False})
    path = tmp_path / "iris_nozipmap.onnx"
    path.write_bytes(onx.SerializeToString())
    loaded = load_model(str(path), "onnx")
    assert [o.name for o in loaded.outputs] == ["label", "probabilities"]
    out = loaded.predict(iris.X[:10].astype(np.float32))
    assert isinstance(out, dict)
    np.testing.assert_allclose(out["probabilities"], iris.model.predict_proba(iris.X[:10]), atol=1e-4)
    with pytest.raises(InvalidInputError):
        loaded.predict(np.zeros((1, 3), dtype=np.float32))


def test_onnx_loader_rejects_non_onnx(iris: IrisModel) -> None:
    with pytest.raises(ModelLoadError, match=r"iris\.joblib is not an ONNX model"):
        load_model(str(iris.path), "onnx")


def test_python_loader(python_model: Path) -> None:
    loaded = load_model(str(python_model), "python", "Doubler")
    assert loaded.platform == "python"
    np.testing.assert_array_equal(loaded.predict(np.ones((2, 2))), np.full((2, 2), 2.0))
    heads = load_model(python_model.as_uri(), "python", "TwoHeads").predict(np.ones((2, 3)))
    assert isinstance(heads, dict)
    assert heads["sum"].tolist() == [3.0, 3.0]
    assert heads["shifted"].dtype == np.int32


def test_python_loader_errors(python_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="has no class 'Nope'"):
        load_model(str(python_model), "python", "Nope")
    with pytest.raises(ModelLoadError, match=r"Broken\.load\(\) failed: RuntimeError: weights are missing"):
        load_model(str(python_model), "python", "Broken")
    bad = tmp_path / "bad.py"
    bad.write_text("raise ImportError('no torch here')\n")
    with pytest.raises(ModelLoadError, match="importing the model module failed: ImportError: no torch here"):
        load_model(str(bad), "python", "Model")
    not_py = tmp_path / "model.txt"
    not_py.write_text("x")
    with pytest.raises(ModelLoadError, match=r"expected a \.py file"):
        load_model(str(not_py), "python")


def test_uri_resolution_and_unknown_format(tmp_path: Path) -> None:
    assert resolve_model_path("file:///a/b%20c.joblib") == Path("/a/b c.joblib")
    assert resolve_model_path("relative/m.joblib").is_absolute()
    with pytest.raises(ModelLoadError, match="unsupported model URI scheme 's3'"):
        resolve_model_path("s3://bucket/m.joblib")
    with pytest.raises(ModelLoadError, match="unknown model format 'tensorflow'"):
        get_loader("tensorflow")
