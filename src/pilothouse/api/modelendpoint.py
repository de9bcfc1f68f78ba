"""``ModelEndpoint``: what a data scientist writes to get a model served behind one URL.

The spec accepts the short forms people copy from real-world platform manifests — a plain image string
for ``model``, ``accelerators: "nvidia.com/gpu: 2"``, ``memory: 32Gi`` — and normalises them to one
canonical shape, so everything downstream handles exactly one representation.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from pilothouse.api.meta import API_VERSION, Condition, ObjectMeta, StrictModel
from pilothouse.api.quantity import Quantity

ModelFormat = Literal["sklearn", "onnx", "python", "embeddings"]

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


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_DAYS: list[Weekday] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class ScalingSchedule(StrictModel):
    """A time window with its own replica bounds, e.g. ``minReplicas: 4`` on weekdays 08:00-20:00."""

    name: str | None = None
    days: list[Weekday] = Field(default_factory=lambda: list(ALL_DAYS))
    start: str = Field(description="HH:MM, inclusive, in timeZone")
    end: str = Field(description="HH:MM, exclusive; earlier than start means the window crosses midnight")
    timeZone: str = Field(default="UTC", description="An IANA time zone such as Europe/Berlin")
    minReplicas: int | None = Field(default=None, ge=0)
    maxReplicas: int | None = Field(default=None, ge=1)

    @field_validator("timeZone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"must be HH:MM (24-hour), got {value!r}")
        return value


class Autoscaling(StrictModel):
    """Replica bounds and how traffic moves between them (defaults follow Knative's KPA; see docs/autoscaling.md)."""

    minReplicas: int = Field(default=1, ge=0, description="0 allows scale-to-zero")
    maxReplicas: int | None = Field(default=None, ge=1)
    targetUtilization: int = Field(default=70, ge=1, le=100, description="Percent of a replica's capacity")
    metric: Literal["concurrency", "rps", "utilization"] = "concurrency"
    target: float | None = Field(
        default=None,
        gt=0,
        description="Per replica: concurrent requests (default 10) or requests/s (default 100)",
    )
    containerConcurrency: int | None = Field(
        default=None,
        ge=1,
        description="Hard limit of in-flight requests per replica in the gateway; unset = none",
    )
    stableWindowSeconds: int = Field(default=60, ge=6, le=3600)
    panicWindowPercentage: float = Field(default=10.0, ge=1, le=100)
    panicThresholdPercentage: float = Field(default=200.0, ge=110, le=1000)
    maxScaleUpRate: float = Field(default=1000.0, gt=1)
    maxScaleDownRate: float = Field(default=2.0, gt=1)
    scaleToZeroGracePeriodSeconds: int = Field(default=30, ge=0, le=3600)
    schedules: list[ScalingSchedule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _min_le_max(self) -> Autoscaling:
        if self.maxReplicas is None:
            self.maxReplicas = max(self.minReplicas, 1)
        elif self.minReplicas > self.maxReplicas:
            raise ValueError(f"minReplicas ({self.minReplicas}) must be <= maxReplicas ({self.maxReplicas})")
        return self


class CanaryStep(StrictModel):
    weight: int = Field(ge=1, le=100, description="Percent of traffic to the new revision")
    pauseSeconds: int = Field(default=60, ge=0, description="How long to hold the step before the next one")


class Analysis(StrictModel):
    """Gates checked on the gateway's own measurements while a canary holds a step."""

    maxErrorRate: float = Field(
        default=0.05, ge=0, le=1, description="5xx share of the new revision's requests"
    )
    maxP99LatencyMs: float | None = Field(default=None, gt=0)
    maxP99LatencyRatio: float | None = Field(default=None, gt=1, description="New p99 / stable p99")
    minRequests: int = Field(
        default=20, ge=1, description="Requests the new revision must see before judging"
    )


class Rollout(StrictModel):
    strategy: Literal["rolling", "canary", "blueGreen"] = "rolling"
    maxSurge: int = Field(default=1, ge=0, description="Rolling: extra replicas allowed during an update")
    maxUnavailable: int = Field(default=0, ge=0, description="Rolling: replicas that may be not ready")
    steps: list[CanaryStep] = Field(
        default_factory=lambda: [
            CanaryStep(weight=10, pauseSeconds=60),
            CanaryStep(weight=50, pauseSeconds=60),
        ]
    )
    analysis: Analysis | None = Field(default_factory=Analysis)
    paused: bool = Field(default=False, description="Hold the rollout where it is (rollout pause/resume)")

    @model_validator(mode="after")
    def _surge_or_unavailable(self) -> Rollout:
        if self.maxSurge == 0 and self.maxUnavailable == 0:
            raise ValueError("maxSurge and maxUnavailable cannot both be 0")
        weights = [s.weight for s in self.steps]
        if weights != sorted(weights):
            raise ValueError("canary step weights must not decrease")
        return self


class Batching(StrictModel):
    """Dynamic batching in the model server: requests arriving together are predicted as one batch."""

    maxBatchSize: int = Field(default=32, ge=2, le=4096)
    maxLatencyMs: float = Field(default=5.0, gt=0, le=1000, description="Longest a request waits for a batch")


class ModelEndpointSpec(StrictModel):
    model: ModelSource
    resources: Resources = Field(default_factory=Resources)
    env: dict[str, str] = Field(default_factory=dict, description="Environment of every replica")
    batching: Batching | None = Field(default=None, description="Off unless set")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    rollout: Rollout = Field(default_factory=Rollout)

    @field_validator("model", mode="before")
    @classmethod
    def _image_short_form(cls, value: Any) -> Any:
        """``model: registry/name:tag`` (a plain string) means a container image."""
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("must not be empty")
            return {"image": value}
        return value


class RevisionRecord(StrictModel):
    """One revision: a distinct replica template (model, resources, env, batching), never scaling settings."""

    revision: int
    generation: int = Field(description="The spec generation that introduced this template")
    templateHash: str
    created: datetime | None = None


class TrafficTarget(StrictModel):
    revision: int
    percent: int
    readyReplicas: int = 0
    desiredReplicas: int = 0


class ModelEndpointStatus(StrictModel):
    observedGeneration: int | None = None
    latestRevision: int | None = Field(default=None, description="The newest template's revision number")
    stableRevision: int | None = Field(default=None, description="The revision that fully took traffic last")
    revisions: list[RevisionRecord] = Field(
        default_factory=list, description="Recent revisions, oldest first"
    )
    traffic: list[TrafficTarget] = Field(default_factory=list)
    rolloutPhase: Literal["", "Progressing", "Paused", "Completed", "RolledBack", "Degraded"] = ""
    canaryStep: int | None = Field(default=None, description="Index of the canary step in progress")
    stepStartedAt: datetime | None = None
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
