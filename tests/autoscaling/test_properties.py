"""Properties of ``decide`` over arbitrary configs, sample series, replica counts and carried state."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from pilothouse.autoscaling import (
    WEEKDAYS,
    AutoscalerConfig,
    AutoscalerState,
    Decision,
    MetricSample,
    Schedule,
    bounds_at,
    decide,
)

NOW = 1_000_000.0


@dataclass(frozen=True)
class Case:
    config: AutoscalerConfig
    samples: tuple[MetricSample, ...]
    ready: int
    current: int
    state: AutoscalerState
    held: int

    def run(self, **changes: object) -> Decision:
        case = replace(self, **changes)  # type: ignore[arg-type]
        return decide(
            case.config,
            case.samples,
            ready=case.ready,
            current=case.current,
            state=case.state,
            now=NOW,
            held_requests=case.held,
        )


hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    lo = draw(st.none() | st.integers(0, 8))
    hi = draw(st.none() | st.integers(1, 40))
    zone = draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]))
    days = draw(
        st.sampled_from([WEEKDAYS, ("mon", "tue", "wed", "thu", "fri"), ("sat", "sun"), ("mon",), ()])
    )
    return Schedule(
        start=draw(hhmm), end=draw(hhmm), days=tuple(days), time_zone=zone, min_replicas=lo, max_replicas=hi
    )


@st.composite
def configs(draw: st.DrawFn) -> AutoscalerConfig:
    lo = draw(st.integers(0, 5))
    hi = draw(st.integers(max(lo, 1), 60))
    stable = draw(st.sampled_from([6.0, 30.0, 60.0, 120.0]))
    return AutoscalerConfig(
        min_replicas=lo,
        max_replicas=hi,
        metric=draw(st.sampled_from(["concurrency", "rps", "utilization"])),
        target=draw(st.floats(0.5, 100.0)),
        stable_window=stable,
        panic_window=max(1.0, stable * draw(st.sampled_from([0.01, 0.1, 0.5, 1.0]))),
        panic_threshold=draw(st.floats(1.1, 10.0)),
        max_scale_up_rate=draw(st.floats(1.01, 1000.0)),
        max_scale_down_rate=draw(st.floats(1.01, 10.0)),
        scale_to_zero_grace=draw(st.sampled_from([0.0, 10.0, 30.0, 90.0])),
        schedules=tuple(draw(st.lists(schedules(), max_size=2))),
    )


values = st.floats(0.0, 500.0) | st.just(0.0)


@st.composite
def sample_series(draw: st.DrawFn) -> tuple[MetricSample, ...]:
    """Up to ~150 s of reports ending near NOW: a few constant segments, reported every 1, 2 or 7 s
    (a late or missing tick), cheap to draw so hundreds of examples run in seconds."""
    segments = draw(
        st.lists(
            st.tuples(
                st.integers(1, 40),  # seconds
                st.sampled_from([1.0, 1.0, 2.0, 7.0]),  # report spacing
                values,  # concurrency
                values,  # rps
                st.none() | st.floats(0.0, 150.0),  # utilization
            ),
            max_size=4,
        )
    )
    t = NOW - draw(st.sampled_from([0.0, 0.5, 3.0]))
    out: list[MetricSample] = []
    for seconds, spacing, conc, rps, util in reversed(segments):
        for _ in range(max(1, int(seconds / spacing))):
            out.append(MetricSample(t=t, concurrency=conc, rps=rps, utilization=util))
            t -= spacing
    return tuple(reversed(out))


@st.composite
def states(draw: st.DrawFn) -> AutoscalerState:
    panic_until = draw(st.none() | st.floats(NOW - 200, NOW + 200))
    return AutoscalerState(
        panic_until=panic_until,
        panic_started=None if panic_until is None else panic_until - 60,
        max_panic_replicas=0 if panic_until is None else draw(st.integers(0, 80)),
        last_active=draw(st.none() | st.floats(NOW - 500, NOW)),
    )


cases = st.builds(
    Case,
    config=configs(),
    samples=sample_series(),
    ready=st.integers(0, 60),
    current=st.integers(0, 60),
    state=states(),
    held=st.integers(0, 3) | st.integers(0, 100),
)


# One drawn case feeds every invariant: drawing is what costs time here, deciding is cheap.


def check_within_bounds(case: Case, d: Decision) -> None:
    lo, hi, _ = bounds_at(case.config, NOW)
    assert lo <= d.desired <= hi, "outside the bounds in force"
    assert (d.inputs["min_replicas"], d.inputs["max_replicas"]) == (lo, hi)


def check_scale_down_rate(case: Case, d: Decision) -> None:
    _, hi, _ = bounds_at(case.config, NOW)
    if case.ready > 0:
        floor = math.floor(Fraction(case.ready) / Fraction(case.config.max_scale_down_rate))
        assert d.desired >= min(floor, hi), "scaled down faster than max_scale_down_rate"


def check_scale_up_rate(case: Case, d: Decision) -> None:
    lo, _, _ = bounds_at(case.config, NOW)
    if not d.panic and not d.scale_from_zero:
        ceiling = math.ceil(Fraction(case.config.max_scale_up_rate) * max(1, case.ready))
        assert d.desired <= max(ceiling, lo, 1 if case.current else 0), "scaled up faster than the rate"


def check_no_scale_down_in_panic(case: Case, d: Decision) -> None:
    lo, hi, _ = bounds_at(case.config, NOW)
    if d.panic:
        assert d.desired >= min(case.current, hi), "scaled down while panicking"
        assert d.desired <= max(d.state.max_panic_replicas, lo), "the panic forgot its maximum"
    else:
        assert d.state.max_panic_replicas == 0 and d.state.panic_until is None


def check_scale_to_zero(case: Case, d: Decision) -> None:
    if d.desired == 0 and case.current > 0:
        lo, _, _ = bounds_at(case.config, NOW)
        assert lo == 0 and case.held == 0
        assert not any(NOW - case.config.stable_window < s.t <= NOW and s.traffic for s in case.samples)
        assert d.state.last_active is not None
        assert NOW - d.state.last_active >= case.config.scale_to_zero_grace


def check_scale_from_zero(case: Case) -> None:
    _, hi, _ = bounds_at(case.config, NOW)
    d = case.run(current=0, held=max(1, case.held))
    assert 1 <= d.desired <= hi, "a held request at zero must start a replica at once"
    assert d.scale_from_zero
    assert d.state.last_active == NOW


def check_deterministic_and_pure(case: Case, d: Decision) -> None:
    samples = list(case.samples)
    before = copy.deepcopy(samples)
    again = decide(case.config, samples, case.ready, case.current, case.state, NOW, case.held)
    assert again == d
    assert samples == before
    assert all(math.isfinite(v) for v in d.inputs.values())
    assert d.reason


@settings(max_examples=250, deadline=None)
@given(cases)
def test_invariants(case: Case) -> None:
    d = case.run()
    check_within_bounds(case, d)
    check_scale_down_rate(case, d)
    check_scale_up_rate(case, d)
    check_no_scale_down_in_panic(case, d)
    check_scale_to_zero(case, d)
    check_scale_from_zero(case)
    check_deterministic_and_pure(case, d)


@settings(max_examples=200, deadline=None)
@given(cases, st.floats(1.0, 20.0), st.integers(0, 50))
def test_monotone_in_demand(case: Case, factor: float, extra_held: int) -> None:
    more = tuple(
        MetricSample(
            t=s.t,
            concurrency=s.concurrency * factor,
            rps=s.rps * factor,
            utilization=None if s.utilization is None else s.utilization * factor,
        )
        for s in case.samples
    )
    low = case.run()
    high = case.run(samples=more, held=case.held + extra_held)
    assert high.desired >= low.desired
