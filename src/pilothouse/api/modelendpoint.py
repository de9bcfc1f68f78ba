"""``ModelEndpoint``: what a data scientist writes to get a model served behind one URL.

The spec accepts the short forms people copy from real-world platform manifests — a plain image string
for ``model``, ``accelerators: "nvidia.com/gpu: 2"``, ``memory: 32Gi`` — and normalises them to one
canonical shape, so everything downstream handles exactly one representation.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pilothouse.api.meta import API_VERSION, Condition, ObjectMeta, StrictModel
from pilothouse.api.quantity import Quantity

ModelFormat = Literal["sklearn", "onnx", "python"]

_FORMAT_BY_SUFFIX: dict[str, ModelFormat] = {
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".onnx": "onnx",
    ".py": "python",
}

DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
_ACCELERATOR_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9._]*[a-z0-9])?$")


class ModelSource(StrictModel):
    """Where the model comes from: exactly one of ``uri`` (+ ``format``), ``image`` or ``command``.

    ``uri`` is a path or ``file://`` URI of a model file (or, for ``format: python``, a ``.py`` file whose
    ``className`` has ``load()`` and ``predict()``). ``image`` is a container image: only the Kubernetes
    runtime can run it. ``command`` is a user-provided server that listens on ``$PORT`` and answers
    ``readinessPath``.
    """

    name: str | None = Field(
        default=None, description="Model name in the inference protocol; default: endpoint name"
    )
    uri: str | None = None
    format: ModelFormat | None = None
    className: str | None = Field(default=None, description="For format python: the class to load")
    image: str | None = None
    command: list[str] | None = None
    readinessPath: str = "/v2/health/ready"

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelSource:
        given = [k for k in ("uri", "image", "command") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "exactly one of uri, image or command must be set"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.uri is not None and self.format is None:
            suffix = PurePosixPath(self.uri.split("://", 1)[-1]).suffix.lower()
            inferred = _FORMAT_BY_SUFFIX.get(suffix)
            if inferred is None:
                raise ValueError(
                    f"format is required: cannot infer it from {self.uri!r} (use sklearn, onnx or python)"
                )
            self.format = inferred
        if self.format is not None and self.uri is None:
            raise ValueError("format applies to uri models only")
        if self.format == "python" and not self.className:
            self.className = "Model"
        if self.command is not None and not all(self.command):
            raise ValueError("command must be a non-empty list of non-empty strings")
        return self

    @property
    def kind(self) -> Literal["uri", "image", "command"]:
        if self.uri is not None:
            return "uri"
        return "image" if self.image is not None else "command"


def _parse_accelerators(value: Any) -> Any:
    """Accept ``{nvidia.com/gpu: 2}``, ``"nvidia.com/gpu: 2"`` (also comma-separated) or a bare count."""
    if isinstance(value, bool):
        raise ValueError("accelerators must be a map like {nvidia.com/gpu: 2}")
    if isinstance(value, int):
        return {DEFAULT_GPU_RESOURCE: value}
    if isinstance(value, str):
        text = value.strip().strip("{}")
        if text.isdigit():
            return {DEFAULT_GPU_RESOURCE: int(text)}
        out: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, count = part.rpartition(":")
            if not sep or not name.strip():
                raise ValueError(f"cannot parse {value!r}: expected 'nvidia.com/gpu: 2'")
            out[name.strip()] = count.strip()
        return out
    return value


class Resources(StrictModel):
    accelerators: dict[str, int] = Field(default_factory=dict)
    cpu: Quantity | None = None
    memory: Quantity | None = None

    @field_validator("accelerators", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return _parse_accelerators(value)

    @field_validator("accelerators")
    @classmethod
    def _names_and_counts(cls, value: dict[str, int]) -> dict[str, int]:
        for name, count in value.items():
            if not _ACCELERATOR_NAME.match(name):
                raise ValueError(f"invalid accelerator resource name {name!r} (expected e.g. nvidia.com/gpu)")
            if count < 0:
                raise ValueError(f"{name}: count must not be negative (got {count})")
        return {k: v for k, v in value.items() if v > 0}

    @property
    def gpus(self) -> int:
        return sum(self.accelerators.values())


class Autoscaling(StrictModel):
    minReplicas: int = Field(default=1, ge=0)
    maxReplicas: int | None = Field(default=None, ge=1)
    targetUtilization: int = Field(default=70, ge=1, le=100, description="Percent of a replica's capacity")

    @model_validator(mode="after")
    def _min_le_max(self) -> Autoscaling:
        if self.maxReplicas is None:
            self.maxReplicas = max(self.minReplicas, 1)
        elif self.minReplicas > self.maxReplicas:
            raise ValueError(f"minReplicas ({self.minReplicas}) must be <= maxReplicas ({self.maxReplicas})")
        return self


class ModelEndpointSpec(StrictModel):
    model: ModelSource
    resources: Resources = Field(default_factory=Resources)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)

    @field_validator("model", mode="before")
    @classmethod
    def _image_short_form(cls, value: Any) -> Any:
        """``model: registry/name:tag`` (a plain string) means a container image."""
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("must not be empty")
            return {"image": value}
        return value


class ModelEndpointStatus(StrictModel):
    observedGeneration: int | None = None
    url: str | None = None
    desiredReplicas: int = Field(
        default=0, description="Replicas the controller wants for the newest revision"
    )
    replicas: int = Field(default=0, description="Replicas that exist, across revisions")
    readyReplicas: int = Field(default=0, description="Replicas that answer traffic, across revisions")
    revision: int | None = Field(default=None, description="The spec generation the ready replicas serve")
    conditions: list[Condition] = Field(default_factory=list)


class ModelEndpoint(StrictModel):
    apiVersion: Literal["pilothouse.dev/v1alpha1"] = API_VERSION
    kind: Literal["ModelEndpoint"] = "ModelEndpoint"
    metadata: ObjectMeta
    spec: ModelEndpointSpec
    status: ModelEndpointStatus = Field(default_factory=ModelEndpointStatus)
