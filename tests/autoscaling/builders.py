"""Small builders for autoscaler tests: per-second sample series and a default config."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pilothouse.autoscaling import AutoscalerConfig, AutoscalerState, Decision, MetricSample, decide

T0 = 1_000_000.0
"""An arbitrary epoch second to start series at (well away from 0, as real timestamps are)."""


def series(
    value: float, start: float, end: float, *, rps: float | None = None, utilization: float | None = None
) -> list[MetricSample]:
    """One sample per second at t = start, start+1, ..., end (inclusive), all with the same values."""
    n = round(end - start)
    return [
        MetricSample(
            t=start + i, concurrency=value, rps=value if rps is None else rps, utilization=utilization
        )
        for i in range(n + 1)
    ]


def config(**overrides: Any) -> AutoscalerConfig:
    """Round numbers: target 10 per replica, 1..100 replicas, Knative's windows and rates."""
    base = AutoscalerConfig(min_replicas=1, max_replicas=100, target=10.0)
    return replace(base, **overrides)


def at(
    cfg: AutoscalerConfig,
    samples: list[MetricSample],
    now: float,
    *,
    ready: int,
    current: int | None = None,
    state: AutoscalerState | None = None,
    held: int = 0,
) -> Decision:
    return decide(
        cfg,
        samples,
        ready=ready,
        current=ready if current is None else current,
        state=state or AutoscalerState(),
        now=now,
        held_requests=held,
    )
