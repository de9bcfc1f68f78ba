"""``decide``: one autoscaling decision, a pure function of metric windows and the carried state.

The algorithm is Knative KPA's (stable and panic windows, rate limits relative to ready replicas, no
scale-down while panicking) with changes for a platform whose gateway is always in the request path:
scale from zero is immediate and sized to the held demand (Ray Serve's cold-start fast path), the
scale-to-zero grace period runs alongside the stable window rather than after it, and a panic also
keeps replicas that are still starting. Every rule and default is listed, beside Knative's and Ray
Serve's, in docs/autoscaling.md.

The function reads no clock and does no I/O: ``now`` and the samples come in, a ``Decision`` with the
next ``AutoscalerState`` goes out, and the same inputs always give the same decision, so a recorded
trace can be replayed exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pilothouse.autoscaling.config import AutoscalerConfig, bounds_at
from pilothouse.autoscaling.windows import MetricSample, WindowAverage, last_traffic, ordered, window_average

_INTEGER_TOLERANCE = 1e-9
"""Ratios this close to an integer count as it: 2.1 / 0.7 is 3.0000000000000004 in floating point, and
one phantom replica per decision is not a rounding error a user should ever see."""
_REPLICA_CEILING = 10**9
"""Upper clamp before rounding, so absurd inputs give a huge replica count instead of an overflow."""


@dataclass(frozen=True)
class AutoscalerState:
    """What one decision hands to the next. The caller stores it (memory or status annotations).

    ``panic_until``: panic mode holds while ``now < panic_until``; every decision that sees the panic
    condition pushes it to ``now + stable_window``. ``panic_started``: when this panic began (for the
    reason text). ``max_panic_replicas``: the highest desired count of this panic, below which the
    panic does not go. ``last_active``: newest evidence of traffic (a sample with requests, or a held
    request); ``None`` until the first decision.
    """

    panic_until: float | None = None
    panic_started: float | None = None
    max_panic_replicas: int = 0
    last_active: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        """Plain values for persisting, e.g. as JSON in a status annotation."""
        return {
            "panic_until": self.panic_until,
            "panic_started": self.panic_started,
            "max_panic_replicas": self.max_panic_replicas,
            "last_active": self.last_active,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AutoscalerState:
        """Inverse of ``as_dict``; unknown keys are ignored and missing ones take the defaults."""

        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            panic_until=opt("panic_until"),
            panic_started=opt("panic_started"),
            max_panic_replicas=int(data.get("max_panic_replicas") or 0),
            last_active=opt("last_active"),
        )


@dataclass(frozen=True)
class Decision:
    """The answer: how many replicas now, why (in words for an event), and the numbers behind it."""

    desired: int
    state: AutoscalerState
    reason: str
    inputs: Mapping[str, float] = field(hash=False)
    panic: bool
    scale_from_zero: bool


def _near_int(x: float) -> int | None:
    n = round(x)
    return int(n) if abs(x - n) <= _INTEGER_TOLERANCE * max(1.0, abs(x)) else None


def ceil_tolerant(x: float) -> int:
    """``ceil`` that does not round 3.0000000000000004 up to 4 (see ``_INTEGER_TOLERANCE``)."""
    x = min(x, float(_REPLICA_CEILING))
    n = _near_int(x)
    return n if n is not None else math.ceil(x)


def floor_tolerant(x: float) -> int:
    """``floor`` that does not round 2.9999999999999996 down to 2."""
    x = min(x, float(_REPLICA_CEILING))
    n = _near_int(x)
    return n if n is not None else math.floor(x)


def _metric_value(metric: str) -> Callable[[MetricSample], float | None]:
    if metric == "rps":
        return lambda s: s.rps
    if metric == "utilization":
        return lambda s: s.utilization
    return lambda s: s.concurrency


def _plural(n: int) -> str:
    return f"{n} replica" if n == 1 else f"{n} replicas"


def _describe(metric: str, avg: float, window: float, target: float, ready: int) -> str:
    if metric == "utilization":
        return f"utilization {avg:.1f}% x {ready} ready over {window:g} s / target {target:g}%"
    return f"{metric} {avg:.1f} over {window:g} s / target {target:g}"


def _raw_counts(
    config: AutoscalerConfig, stable: WindowAverage, panic: WindowAverage, ready: int, current: int
) -> tuple[int, int, bool]:
    """``(desired from the stable window, desired from the panic window, measured?)`` before limits.

    KPA's ``ceil(average / target)`` for concurrency and rps; HPA's ``ceil(ready x utilization /
    target)`` for utilization, which holds ``current`` when nothing was measured (no sample carried a
    utilization, or no replica is ready to be measured).
    """
    if config.metric != "utilization":
        return ceil_tolerant(stable.value / config.target), ceil_tolerant(panic.value / config.target), True
    if stable.samples == 0 or ready == 0:
        return current, current, False
    panic_value = panic.value if panic.samples else stable.value
    return (
        ceil_tolerant(ready * stable.value / config.target),
        ceil_tolerant(ready * panic_value / config.target),
        True,
    )


def _next_panic(
    state: AutoscalerState, over: bool, now: float, stable_window: float
) -> tuple[float | None, float | None, int]:
    """``(panic_until, panic_started, max_panic_replicas)`` after this decision (Knative's panicTime).

    Seeing the condition starts a panic or extends it to ``now + stable_window``; without it a panic
    runs out once ``now`` reaches ``panic_until``, i.e. after a full stable window without the
    condition. A stale state (``panic_until`` already past) is a new panic, not a continuation.
    """
    was_panicking = state.panic_until is not None and now < state.panic_until
    if over:
        if was_panicking:
            return now + stable_window, state.panic_started, state.max_panic_replicas
        return now + stable_window, now, 0
    if was_panicking:
        return state.panic_until, state.panic_started, state.max_panic_replicas
    return None, None, 0


def _last_active(state: AutoscalerState, data: Sequence[MetricSample], now: float, held: int) -> float:
    """Newest evidence of traffic. With none on record (first decision of an idle endpoint) the
    endpoint has been idle at least since the oldest report we hold, or, with no reports, from now."""
    evidence = [
        t for t in (state.last_active, last_traffic(data, now), now if held else None) if t is not None
    ]
    if evidence:
        return max(evidence)
    reported = [s.t for s in data if s.t <= now]
    return min(reported) if reported else now


def _cold_start_need(config: AutoscalerConfig, stable: WindowAverage, panic: WindowAverage, held: int) -> int:
    """Replicas to start from zero: the visible demand over the target, at least one (Ray's fast path).

    Held requests are queued concurrency, so they size a concurrency endpoint; for rps only the rate
    counts; for utilization there is no replica to measure, so one.
    """
    if config.metric == "concurrency":
        need = ceil_tolerant(max(stable.value, panic.value, float(held)) / config.target)
    elif config.metric == "rps":
        need = ceil_tolerant(max(stable.value, panic.value) / config.target)
    else:
        need = 1
    return max(need, 1)


def _explain_mode(
    config: AutoscalerConfig,
    window: WindowAverage,
    raw: int,
    ready: int,
    current: int,
    measured: bool,
    panic_since: float | None,
) -> str:
    """The first clause of the reason: which window decided, on what numbers.

    ``window``/``raw`` are the panic window's when ``panic_since`` (seconds in panic) is set, else the
    stable window's.
    """
    in_panic = panic_since is not None
    if not measured:
        return f"utilization unmeasured: holding {_plural(current)}" + (" in panic" if in_panic else "")
    length = config.panic_window if in_panic else config.stable_window
    what = _describe(config.metric, window.value, length, config.target, ready)
    if not in_panic:
        return f"stable: {what} -> {_plural(raw)}"
    ready_pods = max(1, ready)
    return (
        f"panic: {what} -> {_plural(raw)} ({raw / ready_pods:.2f}x of {ready_pods} ready,"
        f" threshold {config.panic_threshold:g}x, panicking for {panic_since:g} s)"
    )


def _toward_zero(
    config: AutoscalerConfig,
    desired: int,
    down_limit: int,
    current: int,
    idle: bool,
    idle_for: float,
    notes: list[str],
) -> int:
    """Scale-to-zero rules for an endpoint whose minimum is 0 and that is not panicking.

    Idle (no request in the stable window, none held) for ``max(grace, stable window)`` since the last
    traffic: step toward zero as fast as the scale-down rate allows. Otherwise keep at least one replica
    while any exists or any request is around, so zero is only ever reached through the idle rule.
    """
    zero_wait = max(config.scale_to_zero_grace, config.stable_window)
    if idle and idle_for >= zero_wait:
        notes.append(
            f"scale to zero: no traffic for {idle_for:g} s"
            + (f", stepping down to {down_limit} first" if down_limit > 0 else "")
        )
        return down_limit
    if desired == 0 and not (current == 0 and idle):
        if idle:
            notes.append(f"holding 1 replica: no traffic for {idle_for:g} s, zero after {zero_wait:g} s")
        return 1
    return desired


def _sample_age(data: Sequence[MetricSample], now: float) -> dict[str, float]:
    """How old the newest report is: a large age means the gateway stopped reporting, not idleness."""
    reported = [s.t for s in data if s.t <= now]
    return {"sample_age": now - max(reported)} if reported else {}


def _rate_note(config: AutoscalerConfig, limited: int, raw: int, ready_pods: int) -> str:
    if limited < raw:
        return f"limited to {limited} by max scale-up rate {config.max_scale_up_rate:g} x {ready_pods} ready"
    return f"kept at {limited} by max scale-down rate {config.max_scale_down_rate:g} ({ready_pods} ready)"


def _bounds_note(final: int, desired: int, lo: int, hi: int, schedule: str | None) -> str:
    where = f" (schedule {schedule})" if schedule else ""
    if final > desired:
        return f"raised to min {lo}{where}"
    if final < desired:
        return f"capped at max {hi}{where}"
    return f"bounds {lo}..{hi} from schedule {schedule}"


def decide(
    config: AutoscalerConfig,
    samples: Sequence[MetricSample],
    ready: int,
    current: int,
    state: AutoscalerState,
    now: float,
    held_requests: int = 0,
) -> Decision:
    """The replicas the endpoint should have at ``now``.

    ``samples``: gateway reports, oldest first (reports after ``now`` are ignored; only the last
    ``stable_window`` seconds matter). ``ready``: replicas answering traffic. ``current``: replicas the
    endpoint has now, ready or starting (the last desired count the caller applied). ``state``: the
    previous decision's ``state`` (``AutoscalerState()`` the first time). ``held_requests``: requests
    the gateway is holding because no replica is ready.
    """
    if ready < 0 or current < 0 or held_requests < 0 or not math.isfinite(now):
        raise ValueError(
            f"need counts >= 0 and a finite now (ready={ready}, current={current}, held={held_requests}, now={now})"
        )

    now = float(now)
    data = ordered(samples)
    lo, hi, schedule = bounds_at(config, now)
    ready_pods = max(1, ready)
    value = _metric_value(config.metric)
    stable = window_average(data, now, config.stable_window, value)
    panic_avg = window_average(data, now, config.panic_window, value)
    notes: list[str] = []

    # 1. Raw desired counts from each window.
    raw_stable, raw_panic, measured = _raw_counts(config, stable, panic_avg, ready, current)

    # 2. Rate limits, relative to ready replicas (at least one, as in KPA).
    up_limit = ceil_tolerant(config.max_scale_up_rate * ready_pods)
    down_limit = floor_tolerant(ready_pods / config.max_scale_down_rate)
    desired_stable = min(max(raw_stable, down_limit), up_limit)
    desired_panic = min(max(raw_panic, down_limit), up_limit)

    # 3. Panic: entered at raw_panic / ready >= threshold; while in it, never scale down.
    threshold_pods = config.panic_threshold * ready_pods
    over = measured and raw_panic >= threshold_pods - _INTEGER_TOLERANCE * max(1.0, threshold_pods)
    panic_until, panic_started, max_panic = _next_panic(state, over, now, config.stable_window)
    in_panic = panic_until is not None
    desired = max(desired_stable, desired_panic, max_panic, current) if in_panic else desired_stable
    raw, limited = (raw_panic, desired_panic) if in_panic else (raw_stable, desired_stable)
    since = (now - panic_started if panic_started is not None else 0.0) if in_panic else None
    head = _explain_mode(config, panic_avg if in_panic else stable, raw, ready, current, measured, since)
    if measured and (limited < raw or (limited > raw and not in_panic)):
        notes.append(_rate_note(config, limited, raw, ready_pods))
    if in_panic and desired > max(desired_stable, desired_panic):
        notes.append(f"held at {_plural(desired)}: no scale-down while panicking")

    # 4. Scale to zero: traffic (any request, whatever the metric) decides when an endpoint is idle.
    traffic_in_window = any(now - config.stable_window < s.t <= now and s.traffic for s in data)
    idle = held_requests == 0 and not traffic_in_window
    last_active = _last_active(state, data, now, held_requests)
    idle_for = max(0.0, now - last_active)
    if lo == 0 and not in_panic:
        desired = _toward_zero(config, desired, down_limit, current, idle, idle_for, notes)

    # 5. Scale from zero at once, sized to the demand we can see.
    cold = current == 0 and not idle
    if cold:
        need = _cold_start_need(config, stable, panic_avg, held_requests)
        desired = max(desired, need)
        held = f"{held_requests} held request{'' if held_requests == 1 else 's'}"
        notes.append(f"scale from zero: {held} -> {_plural(need)}")

    # 6. Bounds last: min/max (from the schedule in force) beat everything above.
    final = min(max(desired, lo), hi)
    if final != desired or schedule:
        notes.append(_bounds_note(final, desired, lo, hi, schedule))

    inputs: dict[str, float] = {
        "stable_average": stable.value,
        "panic_average": panic_avg.value,
        "stable_samples": float(stable.samples),
        "panic_samples": float(panic_avg.samples),
        "target": config.target,
        "ready": float(ready),
        "current": float(current),
        "held_requests": float(held_requests),
        "desired_stable": float(raw_stable),
        "desired_panic": float(raw_panic),
        "panic_ratio": raw_panic / ready_pods,
        "max_scale_up": float(up_limit),
        "max_scale_down": float(down_limit),
        "min_replicas": float(lo),
        "max_replicas": float(hi),
        "schedule_in_force": 1.0 if schedule else 0.0,
        "idle_seconds": idle_for,
    }
    inputs.update(_sample_age(data, now))
    reason = "; ".join([head, *notes])
    if notes or final != raw:
        reason += f" => {_plural(final)}"
    return Decision(
        desired=final,
        state=AutoscalerState(
            panic_until=panic_until,
            panic_started=panic_started,
            max_panic_replicas=desired if in_panic else 0,  # before bounds, as KPA's maxPanicPods
            last_active=last_active,
        ),
        reason=reason,
        inputs=MappingProxyType(inputs),
        panic=in_panic,
        scale_from_zero=cold and final > 0,
    )
