"""Replay: a synthetic 10x load step, sampled every second, decided every 2 s as the controller will.

Replicas become ready ``STARTUP`` seconds after they are asked for (a model server loads its model
first), so the autoscaler sees ``ready`` lag ``desired`` exactly as it will in production.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from pilothouse.api.modelendpoint import Autoscaling
from pilothouse.autoscaling import (
    AutoscalerConfig,
    AutoscalerState,
    Decision,
    MetricSample,
    config_from_spec,
    decide,
)

from .builders import T0

STEP_AT = T0 + 120
STEP_END = T0 + 420
END = T0 + 600
TICK = 2.0
STARTUP = 10.0


def load(t: float, base: float) -> float:
    """Concurrency reported for the second ending at t: base, 10x base during the step."""
    return base * 10 if STEP_AT < t <= STEP_END else base


@dataclass
class Cluster:
    """Replicas and when each becomes ready; scale-down removes the newest first, at once."""

    ready_at: list[float] = field(default_factory=list)

    def scale(self, desired: int, now: float) -> None:
        while len(self.ready_at) < desired:
            self.ready_at.append(now + STARTUP)
        del self.ready_at[desired:]

    def ready(self, now: float) -> int:
        return sum(1 for t in self.ready_at if t <= now)


def replay(cfg: AutoscalerConfig, base: float, initial: int) -> list[tuple[float, Decision]]:
    cluster = Cluster(ready_at=[T0 - 1000.0] * initial)
    state = AutoscalerState()
    samples: list[MetricSample] = []
    decisions: list[tuple[float, Decision]] = []
    t = T0
    while t <= END:
        samples.append(MetricSample(t=t, concurrency=load(t, base), rps=load(t, base)))
        if (t - T0) % TICK == 0:
            window = [s for s in samples if s.t > t - cfg.stable_window]  # what a caller keeps
            d = decide(cfg, window, ready=cluster.ready(t), current=len(cluster.ready_at), state=state, now=t)
            state = d.state
            cluster.scale(d.desired, t)
            decisions.append((t, d))
        t += 1.0
    return decisions


@pytest.mark.parametrize("base", [7.0, 3.5, 14.0, 21.0])
def test_ten_x_step_reaches_its_replicas_within_the_panic_window_and_never_oscillates(base: float) -> None:
    cfg = AutoscalerConfig(min_replicas=1, max_replicas=100)  # Knative's windows, target 7
    assert cfg.target == 7.0 and cfg.panic_window == 6.0
    before = math.ceil(base / cfg.target)
    peak = math.ceil(10 * base / cfg.target)
    decisions = replay(cfg, base, initial=before)

    during = [(t, d) for t, d in decisions if STEP_AT < t <= STEP_END]
    assert all(d.desired == before for t, d in decisions if T0 + 60 <= t <= STEP_AT)
    reached = next(t for t, d in during if d.desired >= peak)
    assert reached - STEP_AT <= cfg.panic_window
    assert during[0][1].panic  # the first decision after the step already panics
    counts = [d.desired for _, d in during]
    assert counts == sorted(counts), "scaled down and up again during the step"
    assert max(counts) == peak, "overshot the replicas the load needs"
    assert counts[-1] == peak and not during[-1][1].panic  # panic over, stable agrees


@pytest.mark.parametrize("base", [7.0, 14.0])
def test_after_the_step_replicas_only_come_down(base: float) -> None:
    cfg = AutoscalerConfig(min_replicas=1, max_replicas=100)
    decisions = replay(cfg, base, initial=math.ceil(base / cfg.target))
    after = [d.desired for t, d in decisions if t > STEP_END]
    assert after == sorted(after, reverse=True)
    assert after[-1] == math.ceil(base / cfg.target)
    # ...and at most half the ready replicas go per decision.
    assert all(d.desired >= d.inputs["ready"] // 2 for _, d in decisions)


def test_replay_from_the_api_defaults_with_scale_to_zero() -> None:
    """A 0 -> 35 -> 0 concurrency trace through ``config_from_spec``: from zero replicas back to zero."""
    cfg = config_from_spec(Autoscaling(minReplicas=0, maxReplicas=30))
    assert cfg == AutoscalerConfig(min_replicas=0, max_replicas=30)

    def idle_load(t: float) -> float:
        return 35.0 if STEP_AT < t <= STEP_END else 0.0

    cluster = Cluster()
    state = AutoscalerState()
    samples: list[MetricSample] = []
    seen: list[tuple[float, Decision]] = []
    t = T0
    while t <= END:
        samples.append(MetricSample(t=t, concurrency=idle_load(t), rps=idle_load(t)))
        if (t - T0) % TICK == 0:
            d = decide(
                cfg,
                samples[-120:],
                ready=cluster.ready(t),
                current=len(cluster.ready_at),
                state=state,
                now=t,
                held_requests=1 if idle_load(t) and not cluster.ready(t) else 0,
            )
            state = d.state
            cluster.scale(d.desired, t)
            seen.append((t, d))
        t += 1.0
    up_at, first_up = next((t, d) for t, d in seen if d.desired > 0)
    assert up_at == STEP_AT + TICK  # the first decision after traffic arrives
    assert first_up.scale_from_zero and first_up.state.last_active == up_at
    assert max(d.desired for _, d in seen) == 5  # ceil(35 / 7)
    down_at, zero_again = next((t, d) for t, d in seen if t > up_at and d.desired == 0)
    assert zero_again.state.last_active == STEP_END
    assert down_at - STEP_END == max(cfg.stable_window, cfg.scale_to_zero_grace)
    assert all(d.desired == 0 for t, d in seen if t >= down_at)
