"""End to end through the ``uri`` path: the runtime runs the real model server on an inherited socket."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from local_runtime_support import owner, wait_for

from pilothouse.api.modelendpoint import ModelSource, Resources
from pilothouse.runtime.local import LocalRuntime
from pilothouse.runtime.protocol import WorkloadSpec


@pytest.fixture(autouse=True)
def _model_server_importable() -> None:
    try:
        importlib.import_module("pilothouse.serving.modelserver.cli")
    except ImportError as exc:
        pytest.skip(f"the model server (pilothouse.serving.modelserver) is not importable yet: {exc}")


def uri_workload(uri: str) -> WorkloadSpec:
    return WorkloadSpec(
        owner=owner("iris"),
        revision=1,
        replicas=1,
        model=ModelSource(uri=uri),
        resources=Resources(),
        model_name="iris",
    )


def test_sklearn_model_becomes_ready(make_runtime: Callable[..., LocalRuntime], tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    datasets = pytest.importorskip("sklearn.datasets")
    linear_model = pytest.importorskip("sklearn.linear_model")
    features, labels = datasets.load_iris(return_X_y=True)
    model_path = tmp_path / "iris.joblib"
    joblib.dump(linear_model.LogisticRegression(max_iter=500).fit(features, labels), model_path)

    runtime = make_runtime()
    runtime.ensure(uri_workload(f"file://{model_path}"))
    [state] = wait_for(
        lambda: [s for s in runtime.observe("uid-iris") if s.ready],
        timeout=60,
        what="the model server to load the model",
    )
    assert state.url is not None
    assert httpx.get(state.url + "/v2/health/ready", trust_env=False).status_code == 200
    runtime.remove("uid-iris")
    assert runtime.observe("uid-iris") == []


def test_missing_model_file_is_model_load_failed(make_runtime: Callable[..., LocalRuntime]) -> None:
    runtime = make_runtime()
    runtime.ensure(uri_workload("/nonexistent/model.joblib"))
    [state] = wait_for(
        lambda: [s for s in runtime.observe("uid-iris") if s.phase == "Failed"],
        timeout=60,
        what="the model server to fail loading",
    )
    assert state.reason == "ModelLoadFailed"
    assert state.last_exit_code == 3
    assert "/nonexistent/model.joblib" in state.message
