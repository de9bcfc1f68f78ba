"""The autoscaler core: replicas from metric windows, as a pure, replayable function.

``decide(config, samples, ready, current, state, now, held_requests)`` returns a ``Decision`` (desired
replicas, the next ``AutoscalerState``, a reason in plain words, the numbers behind it). Nothing here
reads a clock or does I/O: the endpoint controller passes the gateway's samples and ``now``, and keeps
the state between calls. ``config_from_spec`` turns ``spec.autoscaling`` into an ``AutoscalerConfig``;
``bounds_at`` says which replica bounds (and schedule) are in force. See docs/autoscaling.md.

Typical use::

    config = config_from_spec(endpoint.spec.autoscaling)
    decision = decide(config, samples, ready=3, current=3, state=previous.state, now=now)
    scale_to(decision.desired); record_event(decision.reason)
"""

from pilothouse.autoscaling.config import (
    DEFAULT_CONCURRENCY_TARGET,
    DEFAULT_MAX_SCALE_DOWN_RATE,
    DEFAULT_MAX_SCALE_UP_RATE,
    DEFAULT_PANIC_THRESHOLD,
    DEFAULT_PANIC_WINDOW_PERCENTAGE,
    DEFAULT_RPS_TARGET,
    DEFAULT_SCALE_TO_ZERO_GRACE,
    DEFAULT_STABLE_WINDOW,
    DEFAULT_TARGET_UTILIZATION,
    METRICS,
    AutoscalerConfig,
    Metric,
    bounds_at,
    config_from_spec,
    effective_target,
)
from pilothouse.autoscaling.kpa import AutoscalerState, Decision, decide
from pilothouse.autoscaling.schedules import WEEKDAYS, Schedule, resolve_bounds, schedules_in_force
from pilothouse.autoscaling.windows import MetricSample, WindowAverage, window_average

__all__ = [
    "DEFAULT_CONCURRENCY_TARGET",
    "DEFAULT_MAX_SCALE_DOWN_RATE",
    "DEFAULT_MAX_SCALE_UP_RATE",
    "DEFAULT_PANIC_THRESHOLD",
    "DEFAULT_PANIC_WINDOW_PERCENTAGE",
    "DEFAULT_RPS_TARGET",
    "DEFAULT_SCALE_TO_ZERO_GRACE",
    "DEFAULT_STABLE_WINDOW",
    "DEFAULT_TARGET_UTILIZATION",
    "METRICS",
    "WEEKDAYS",
    "AutoscalerConfig",
    "AutoscalerState",
    "Decision",
    "Metric",
    "MetricSample",
    "Schedule",
    "WindowAverage",
    "bounds_at",
    "config_from_spec",
    "decide",
    "effective_target",
    "resolve_bounds",
    "schedules_in_force",
    "window_average",
]
