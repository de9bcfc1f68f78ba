"""The autoscaler's settings, already resolved: one effective per-replica target, windows in seconds.

``config_from_spec`` is the only place that knows the user-facing ``Autoscaling`` model; everything
else works on this frozen dataclass, so the core can be tested and replayed without pydantic objects.
Defaults follow Knative's KPA except the concurrency target (see ``DEFAULT_CONCURRENCY_TARGET``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pilothouse.autoscaling.schedules import WEEKDAYS, Schedule, resolve_bounds

if TYPE_CHECKING:
    from pilothouse.api.modelendpoint import Autoscaling

Metric = Literal["concurrency", "rps", "utilization"]
METRICS: tuple[Metric, ...] = ("concurrency", "rps", "utilization")

DEFAULT_CONCURRENCY_TARGET = 10.0
"""Concurrent requests per replica when ``target`` is unset. Knative's is 100 because a web request
mostly waits on I/O; a model server is compute-bound and saturates its CPU (or GPU batch) at roughly
8-32 concurrent requests, after which more concurrency only adds queueing latency."""
DEFAULT_RPS_TARGET = 100.0
"""Requests/s per replica when ``target`` is unset (Knative: 200; KEDA HTTP add-on: 100)."""
DEFAULT_TARGET_UTILIZATION = 70.0
"""Percent of ``target`` to aim for, leaving headroom for bursts (Knative: 70%)."""
DEFAULT_STABLE_WINDOW = 60.0
DEFAULT_PANIC_WINDOW_PERCENTAGE = 10.0
DEFAULT_PANIC_THRESHOLD = 2.0
DEFAULT_MAX_SCALE_UP_RATE = 1000.0
DEFAULT_MAX_SCALE_DOWN_RATE = 2.0
DEFAULT_SCALE_TO_ZERO_GRACE = 30.0
MIN_PANIC_WINDOW = 1.0
"""A panic window shorter than one gateway tick would hold at most one sample: noise, not signal."""
MIN_TARGET = 0.01
"""Knative's ``TargetMin``: keeps a tiny ``target x targetUtilization`` from dividing by ~0."""


@dataclass(frozen=True)
class AutoscalerConfig:
    """Everything ``decide`` needs besides the metrics. Times are seconds; rates and threshold ratios.

    ``target`` is the *effective* per-replica target: requests for ``concurrency``, requests/s for
    ``rps`` (both already multiplied by targetUtilization/100), percent for ``utilization``.
    ``panic_threshold`` is a ratio (2.0 = 200%).
    """

    min_replicas: int
    max_replicas: int
    metric: Metric = "concurrency"
    target: float = DEFAULT_CONCURRENCY_TARGET * DEFAULT_TARGET_UTILIZATION / 100
    stable_window: float = DEFAULT_STABLE_WINDOW
    panic_window: float = DEFAULT_STABLE_WINDOW * DEFAULT_PANIC_WINDOW_PERCENTAGE / 100
    panic_threshold: float = DEFAULT_PANIC_THRESHOLD
    max_scale_up_rate: float = DEFAULT_MAX_SCALE_UP_RATE
    max_scale_down_rate: float = DEFAULT_MAX_SCALE_DOWN_RATE
    scale_to_zero_grace: float = DEFAULT_SCALE_TO_ZERO_GRACE
    schedules: tuple[Schedule, ...] = ()

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.min_replicas < 0:
            problems.append(f"min_replicas must be >= 0 (got {self.min_replicas})")
        if self.max_replicas < max(1, self.min_replicas):
            problems.append(
                f"max_replicas must be >= 1 and >= min_replicas (got {self.min_replicas}..{self.max_replicas})"
            )
        if self.metric not in METRICS:
            problems.append(f"metric must be one of {', '.join(METRICS)} (got {self.metric!r})")
        checks = {
            "target": self.target > 0,
            "stable_window": self.stable_window > 0,
            "panic_window": 0 < self.panic_window <= self.stable_window,
            "panic_threshold": self.panic_threshold > 0,
            "max_scale_up_rate": self.max_scale_up_rate > 1,
            "max_scale_down_rate": self.max_scale_down_rate > 1,
            "scale_to_zero_grace": self.scale_to_zero_grace >= 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or not math.isfinite(value):
                problems.append(f"{name} out of range (got {value})")
        if problems:
            raise ValueError("; ".join(problems))


def bounds_at(config: AutoscalerConfig, now: float) -> tuple[int, int, str | None]:
    """``(min, max, schedule name in force)`` at epoch time ``now``; the name is ``None`` off-schedule."""
    return resolve_bounds(config.min_replicas, config.max_replicas, config.schedules, now)


def effective_target(autoscaling: Autoscaling) -> float:
    """The per-replica target ``decide`` divides by, resolved the way Knative resolves it.

    concurrency: ``target`` (else ``containerConcurrency``, else 10), never above a hard
    ``containerConcurrency``, times targetUtilization/100. rps: ``target`` (else 100) times
    targetUtilization/100. utilization: targetUtilization itself (percent); ``target`` is ignored.
    """
    tu = float(autoscaling.targetUtilization)
    if autoscaling.metric == "utilization":
        return tu
    if autoscaling.metric == "rps":
        total = autoscaling.target if autoscaling.target is not None else DEFAULT_RPS_TARGET
    else:
        cc = autoscaling.containerConcurrency
        if autoscaling.target is not None:
            total = min(autoscaling.target, cc) if cc is not None else autoscaling.target
        else:
            total = float(cc) if cc is not None else DEFAULT_CONCURRENCY_TARGET
    # Multiply before dividing: 10 * 70 / 100 is exactly 7.0, 10 * 0.7 is 7.000000000000001.
    return max(MIN_TARGET, total * tu / 100)


def config_from_spec(autoscaling: Autoscaling) -> AutoscalerConfig:
    """Build the core's config from a validated ``spec.autoscaling``.

    Raises ``ValueError`` for what the API model does not check itself: an unknown schedule time zone.
    """
    stable = float(autoscaling.stableWindowSeconds)
    panic = max(MIN_PANIC_WINDOW, stable * autoscaling.panicWindowPercentage / 100)
    schedules = tuple(
        Schedule(
            name=s.name,
            days=tuple(d for d in WEEKDAYS if d in s.days),
            start=s.start,
            end=s.end,
            time_zone=s.timeZone,
            min_replicas=s.minReplicas,
            max_replicas=s.maxReplicas,
        )
        for s in autoscaling.schedules
    )
    return AutoscalerConfig(
        min_replicas=autoscaling.minReplicas,
        max_replicas=(
            autoscaling.maxReplicas
            if autoscaling.maxReplicas is not None
            else max(autoscaling.minReplicas, 1)
        ),
        metric=autoscaling.metric,
        target=effective_target(autoscaling),
        stable_window=stable,
        panic_window=min(panic, stable),
        panic_threshold=autoscaling.panicThresholdPercentage / 100,
        max_scale_up_rate=autoscaling.maxScaleUpRate,
        max_scale_down_rate=autoscaling.maxScaleDownRate,
        scale_to_zero_grace=float(autoscaling.scaleToZeroGracePeriodSeconds),
        schedules=schedules,
    )
