"""Endpoints that can never run locally are refused before they are stored, naming the field."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from pilothouse.api.errors import FieldProblem
from pilothouse.api.meta import ObjectMeta
from pilothouse.api.modelendpoint import ModelEndpoint, ModelEndpointSpec, ModelSource, Resources
from pilothouse.runtime.local import LocalRuntime
from pilothouse.runtime.protocol import NotSupported, OwnerRef, Runtime, WorkloadSpec


def endpoint(model: dict[str, Any], accelerators: dict[str, int] | None = None) -> ModelEndpoint:
    return ModelEndpoint(
        metadata=ObjectMeta(name="demo"),
        spec=ModelEndpointSpec(
            model=ModelSource.model_validate(model), resources=Resources(accelerators=accelerators or {})
        ),
    )


@pytest.fixture
def gpu_runtime(tmp_path: Path) -> Any:
    runtime = LocalRuntime(tmp_path / "rt", accelerators={"nvidia.com/gpu": 1}, start_monitor=False)
    yield runtime
    runtime.close()


def test_runnable_models_are_admitted(gpu_runtime: LocalRuntime, tmp_path: Path) -> None:
    model = tmp_path / "model.joblib"
    model.write_bytes(b"x")
    assert gpu_runtime.admit(endpoint({"uri": str(model)}, {"nvidia.com/gpu": 1})) == []
    assert gpu_runtime.admit(endpoint({"uri": f"file://{model}"})) == []
    assert gpu_runtime.admit(endpoint({"command": [sys.executable, "-V"]})) == []


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (
            {"image": "ghcr.io/acme/server:1"},
            FieldProblem(
                "spec.model.image",
                "container images need the Kubernetes runtime; run a uri or command model locally",
            ),
        ),
        (
            {"uri": "/no/such/model.joblib"},
            FieldProblem("spec.model.uri", "file not found: /no/such/model.joblib"),
        ),
        (
            {"uri": "file:///no/such/m.onnx"},
            FieldProblem("spec.model.uri", "file not found: /no/such/m.onnx"),
        ),
        (
            {"uri": "models/model.joblib"},
            FieldProblem("spec.model.uri", "'models/model.joblib' must be an absolute path or file:// URI"),
        ),
        (
            {"uri": "s3://bucket/model.joblib"},
            FieldProblem(
                "spec.model.uri",
                "s3:// URIs are not supported by the local runtime; "
                "download the model and use an absolute path or file:// URI",
            ),
        ),
        (
            {"command": ["no-such-server-binary", "--port", "1"]},
            FieldProblem("spec.model.command[0]", "command not found on PATH: no-such-server-binary"),
        ),
    ],
)
def test_unrunnable_models_are_refused(
    gpu_runtime: LocalRuntime, model: dict[str, Any], problem: FieldProblem
) -> None:
    assert gpu_runtime.admit(endpoint(model)) == [problem]


def test_too_many_accelerators(gpu_runtime: LocalRuntime) -> None:
    problems = gpu_runtime.admit(endpoint({"command": [sys.executable]}, {"nvidia.com/gpu": 2}))
    assert problems == [
        FieldProblem("spec.resources.accelerators", "asks for 2 nvidia.com/gpu but this machine has 1")
    ]
    problems = gpu_runtime.admit(endpoint({"command": [sys.executable]}, {"amd.com/gpu": 1}))
    assert problems == [
        FieldProblem("spec.resources.accelerators", "asks for 1 amd.com/gpu but this machine has 0")
    ]


def test_ensure_refuses_images(gpu_runtime: LocalRuntime) -> None:
    workload = WorkloadSpec(
        owner=OwnerRef("ModelEndpoint", "default", "demo", "uid-demo"),
        revision=1,
        replicas=1,
        model=ModelSource(image="ghcr.io/acme/server:1"),
        resources=Resources(),
        model_name="demo",
    )
    with pytest.raises(NotSupported, match="Kubernetes runtime"):
        gpu_runtime.ensure(workload)
    assert gpu_runtime.observe("uid-demo") == []


def test_is_a_runtime(gpu_runtime: LocalRuntime) -> None:
    runtime: Runtime = gpu_runtime  # checked by mypy: LocalRuntime satisfies the protocol
    assert runtime.name == "local"
    assert gpu_runtime.capacity().total == {"nvidia.com/gpu": 1}
