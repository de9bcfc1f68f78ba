"""Metric samples and the window averages the autoscaler decides on.

Why time-weighted: the gateway reports once a second, but a late or skipped report must neither
double-count nor vanish. Each sample is the gateway's average over the time *since the previous
sample*, so the sample is weighted by that span, clipped to the window. With regular one-second
samples this is exactly the simple mean of the samples in the window.

Why only the time we have data for: right after start-up the window reaches back before the first
sample; counting that time as zero traffic would dilute a real burst (Knative's buckets divide by the
time since the first write for the same reason). A window with no samples at all averages to 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_SAMPLE_PERIOD = 1.0
"""Span assumed for the oldest sample when no earlier sample tells us (the gateway's 1 s tick)."""


@dataclass(frozen=True)
class MetricSample:
    """One gateway report, oldest first: averages over the period that ends at ``t``.

    ``concurrency`` counts in-flight plus queued requests of every revision of the endpoint; ``rps`` is
    completions per second; ``utilization`` the average CPU/GPU percent of ready replicas, or ``None``
    when nothing measured it. Values are checked here so a bad report fails where it is built, not
    deep inside a decision.
    """

    t: float
    concurrency: float
    rps: float
    utilization: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.t):
            raise ValueError(f"t must be finite, got {self.t}")
        for name in ("concurrency", "rps", "utilization"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")

    @property
    def traffic(self) -> bool:
        """Did any request exist in this period? Scale-to-zero is about traffic, whatever the metric."""
        return self.concurrency > 0 or self.rps > 0


@dataclass(frozen=True)
class WindowAverage:
    """A window's time-weighted average and how many samples (with a value) fed it."""

    value: float
    samples: int


def ordered(samples: Sequence[MetricSample]) -> list[MetricSample]:
    """A new list sorted by time (stable, so equal times keep their order); the input is not touched."""
    return sorted(samples, key=lambda s: s.t)


def window_average(
    samples: Sequence[MetricSample],
    now: float,
    window: float,
    value: Callable[[MetricSample], float | None],
) -> WindowAverage:
    """Time-weighted mean of ``value(sample)`` over the window ``(now - window, now]``.

    ``samples`` must be sorted by ``t`` (see ``ordered``). Samples after ``now`` are ignored (a clock
    ahead of ours must not leak the future in). A sample whose value is ``None`` (unmeasured) adds
    neither value nor time. If every sample in the window has zero span (repeated timestamps), the plain
    mean of those samples is used.
    """
    lower = now - window
    products: list[float] = []
    weights: list[float] = []
    plain: list[float] = []
    for i, sample in enumerate(samples):
        if sample.t > now:
            break
        if sample.t <= lower:
            continue
        v = value(sample)
        if v is None:
            continue
        begins = samples[i - 1].t if i > 0 else sample.t - _first_period(samples)
        weight = sample.t - max(begins, lower)
        products.append(v * weight)
        weights.append(weight)
        plain.append(v)
    if not plain:
        return WindowAverage(0.0, 0)
    span = math.fsum(weights)
    if span <= 0:
        return WindowAverage(math.fsum(plain) / len(plain), len(plain))
    return WindowAverage(math.fsum(products) / span, len(plain))


def _first_period(samples: Sequence[MetricSample]) -> float:
    """The oldest sample's span: the spacing to the next sample, else the gateway's 1 s tick."""
    if len(samples) > 1 and samples[1].t > samples[0].t:
        return samples[1].t - samples[0].t
    return DEFAULT_SAMPLE_PERIOD


def last_traffic(samples: Sequence[MetricSample], now: float) -> float | None:
    """Time of the newest sample at or before ``now`` that saw any request, or ``None``."""
    times = [s.t for s in samples if s.t <= now and s.traffic]
    return max(times) if times else None
