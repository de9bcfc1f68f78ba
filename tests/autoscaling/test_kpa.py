"""Table-driven checks of each rule of ``decide``: stable, panic, rates, bounds, zero, utilization."""

from __future__ import annotations

import copy
from dataclasses import FrozenInstanceError

import pytest

from pilothouse.autoscaling import AutoscalerConfig, AutoscalerState, MetricSample, Schedule, decide

from .builders import T0, at, config, series

NOW = T0 + 120


def burst(base: float, peak: float, *, peak_seconds: int = 6) -> list[MetricSample]:
    """120 s of ``base``, the last ``peak_seconds`` of which are ``peak`` instead."""
    return series(base, T0, NOW - peak_seconds) + series(peak, NOW - peak_seconds + 1, NOW)


# --- stable mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "ready", "expected", "why"),
    [
        (30.0, 3, 3, "on target: hold"),
        (45.0, 3, 5, "scale up: ceil(45 / 10)"),
        (20.0, 4, 2, "scale down to exactly half (the default max scale-down rate)"),
        (10.0, 2, 1, "scale down 2 -> 1"),
        (0.1, 1, 1, "any demand needs one replica"),
        (0.0, 3, 1, "no demand: down to min 1 (half of 3, floored, is 1)"),
    ],
)
def test_stable_scaling(level: float, ready: int, expected: int, why: str) -> None:
    d = at(config(), series(level, T0, NOW), NOW, ready=ready)
    assert (d.desired, d.panic) == (expected, False), why
    assert d.reason.startswith("stable: concurrency")


def test_stable_reason_reads_like_the_event() -> None:
    d = at(config(target=7.0), series(14.2, T0, NOW), NOW, ready=2)
    assert d.desired == 3
    assert d.reason == "stable: concurrency 14.2 over 60 s / target 7 -> 3 replicas"
    assert d.inputs["stable_average"] == pytest.approx(14.2)
    assert d.inputs["desired_stable"] == 3


def test_exact_multiple_of_target_is_not_rounded_up_by_floating_point() -> None:
    # 2.1 / 0.7 == 3.0000000000000004: a naive ceil asks for a 4th replica.
    d = at(config(target=0.7), series(2.1, T0, NOW), NOW, ready=3)
    assert d.desired == 3


def test_stable_average_is_over_the_stable_window_only() -> None:
    samples = series(100.0, T0, NOW - 60) + series(20.0, NOW - 59, NOW)
    assert at(config(), samples, NOW, ready=2).desired == 2


# --- panic mode ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peak", "ready", "threshold", "panics"),
    [
        (30.1, 2, 2.0, True),  # ceil(3.01) = 4 = 2.0 x 2 ready: exactly the threshold
        (30.0, 2, 2.0, False),  # 3 / 2 = 1.5: below
        (40.0, 2, 2.0, True),
        (110.0, 10, 1.1, True),  # 11 / 10 == 1.1, though 1.1 * 10 == 11.000000000000002
        (100.0, 10, 1.1, False),
        (20.0, 0, 2.0, True),  # no ready replica counts as one
    ],
)
def test_panic_entry_at_the_threshold(peak: float, ready: int, threshold: float, panics: bool) -> None:
    cfg = config(panic_threshold=threshold)
    d = at(cfg, burst(5.0, peak), NOW, ready=ready, current=max(ready, 1))
    assert d.panic is panics
    assert (d.state.panic_until is not None) is panics
    if panics:
        assert d.state.panic_until == NOW + 60
        assert d.state.panic_started == NOW
        assert d.reason.startswith("panic: concurrency")


def test_panic_takes_the_panic_window_and_not_less_than_stable() -> None:
    d = at(config(), burst(10.0, 80.0), NOW, ready=1)
    assert d.panic
    assert d.desired == 8  # ceil(80 / 10) from the 6 s window; stable says ceil(17 / 10) = 2
    assert d.state.max_panic_replicas == 8


def test_no_scale_down_while_panicking() -> None:
    state = AutoscalerState(panic_until=NOW + 30, panic_started=NOW - 30, max_panic_replicas=8)
    # Demand has fallen back to 1 replica's worth, 5 replicas exist: keep the panic's maximum.
    d = at(config(), series(10.0, T0, NOW), NOW, ready=5, current=5, state=state)
    assert d.panic
    assert d.desired == 8
    assert "no scale-down while panicking" in d.reason
    # ...and never below what exists, even when the recorded maximum is lower.
    d = at(config(), series(10.0, T0, NOW), NOW, ready=9, current=12, state=state)
    assert d.desired == 12


def test_panic_keeps_rising_with_demand() -> None:
    state = AutoscalerState(panic_until=NOW + 30, panic_started=NOW - 30, max_panic_replicas=8)
    d = at(config(), burst(10.0, 120.0), NOW, ready=8, current=8, state=state)
    assert d.desired == 12
    assert d.state.max_panic_replicas == 12
    assert d.state.panic_started == NOW - 30


def test_panic_exits_after_a_full_stable_window_without_the_condition() -> None:
    cfg = config()
    samples = burst(10.0, 80.0)
    entered = at(cfg, samples, NOW, ready=1)
    assert entered.panic and entered.state.panic_until == NOW + 60
    # Afterwards demand is steady at 8 replicas' worth and 8 are ready: 1x, no panic condition.
    calm = series(80.0, NOW + 1, NOW + 200)
    just_before = at(cfg, samples + calm, NOW + 59.5, ready=8, state=entered.state)
    assert just_before.panic
    assert just_before.state.panic_until == NOW + 60  # not extended
    after = at(cfg, samples + calm, NOW + 60, ready=8, state=just_before.state)
    assert not after.panic
    assert after.state == AutoscalerState(last_active=after.state.last_active)
    assert after.desired == 8


def test_panic_condition_again_extends_the_panic() -> None:
    state = AutoscalerState(panic_until=NOW + 1, panic_started=NOW - 59, max_panic_replicas=4)
    d = at(config(), burst(10.0, 80.0), NOW, ready=2, state=state)
    assert d.state.panic_until == NOW + 60
    assert d.state.panic_started == NOW - 59


def test_a_stale_panic_state_is_not_continued() -> None:
    stale = AutoscalerState(panic_until=NOW - 1000, panic_started=NOW - 1060, max_panic_replicas=50)
    d = at(config(), series(30.0, T0, NOW), NOW, ready=3, state=stale)
    assert (d.panic, d.desired, d.state.max_panic_replicas) == (False, 3, 0)


# --- rate limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "level", "ready", "expected"),
    [
        ({"max_scale_up_rate": 2.0}, 100.0, 2, 4),  # ceil(2.0 x 2)
        ({"max_scale_up_rate": 1.5}, 100.0, 3, 5),  # ceil(4.5)
        ({"max_scale_up_rate": 1.1}, 100.0, 10, 10),
        ({"max_scale_up_rate": 1.1}, 200.0, 10, 11),  # ceil(1.1 x 10) is 11, not ceil(11.000000000000002)
        ({"max_scale_up_rate": 1000.0}, 1000.0, 1, 100),  # Knative's default barely limits
        ({"max_scale_down_rate": 2.0}, 0.0, 8, 4),  # floor(8 / 2)
        ({"max_scale_down_rate": 4.0}, 0.0, 8, 2),
        ({"max_scale_down_rate": 3.0}, 10.0, 10, 3),  # floor(3.33)
        ({"max_scale_down_rate": 2.0}, 0.0, 1, 1),  # floor(1/2) = 0, but min is 1
    ],
)
def test_rate_limits(overrides: dict[str, float], level: float, ready: int, expected: int) -> None:
    cfg = config(panic_threshold=1000.0, **overrides)  # isolate the stable path
    d = at(cfg, series(level, T0, NOW), NOW, ready=ready)
    assert d.desired == expected


def test_rate_limits_apply_in_panic_too() -> None:
    d = at(config(max_scale_up_rate=2.0), series(200.0, T0, NOW), NOW, ready=2)
    assert d.panic and d.desired == 4
    assert "max scale-up rate" in d.reason


# --- bounds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "level", "ready", "expected"),
    [
        (3, 10, 0.0, 3, 3),
        (3, 10, 0.0, 6, 3),
        (1, 5, 1000.0, 5, 5),
        (1, 5, 1000.0, 20, 5),  # above max already: straight to max, whatever the down rate
        (2, 2, 50.0, 2, 2),
    ],
)
def test_clamped_to_min_and_max(lo: int, hi: int, level: float, ready: int, expected: int) -> None:
    d = at(config(min_replicas=lo, max_replicas=hi), series(level, T0, NOW), NOW, ready=ready)
    assert d.desired == expected
    assert d.inputs["min_replicas"] == lo and d.inputs["max_replicas"] == hi


def test_schedule_bounds_apply_and_are_named() -> None:
    cfg = config(schedules=(Schedule(name="launch", start="00:00", end="00:00", min_replicas=6),))
    d = at(cfg, series(10.0, T0, NOW), NOW, ready=2)
    assert d.desired == 6
    assert "raised to min 6 (schedule launch)" in d.reason
    assert d.inputs["schedule_in_force"] == 1.0


# --- scale to zero -------------------------------------------------------------------------------

LAST = T0 + 100  # the last second with traffic in these tests


def traffic_then_idle(until: float) -> list[MetricSample]:
    return series(5.0, T0, LAST) + series(0.0, LAST + 1, until)


@pytest.mark.parametrize(
    ("grace", "now", "expected"),
    [
        (30.0, LAST + 30, 1),  # grace over, but the stable window still holds traffic
        (30.0, LAST + 59, 1),
        (30.0, LAST + 60, 0),  # the stable window has been idle throughout
        (90.0, LAST + 60, 1),  # grace longer than the window: wait for it
        (90.0, LAST + 89, 1),
        (90.0, LAST + 90, 0),
        (0.0, LAST + 60, 0),
    ],
)
def test_scale_to_zero_only_after_the_grace_period(grace: float, now: float, expected: int) -> None:
    cfg = config(min_replicas=0, scale_to_zero_grace=grace)
    d = at(cfg, traffic_then_idle(now), now, ready=1)
    assert d.desired == expected
    assert d.state.last_active == LAST
    if expected == 1 and now - LAST >= 60:
        assert "holding 1 replica" in d.reason
    if expected == 0:
        assert "scale to zero" in d.reason


def test_scale_to_zero_only_when_min_is_zero() -> None:
    now = LAST + 1000
    d = at(config(min_replicas=1), traffic_then_idle(now), now, ready=1)
    assert d.desired == 1


def test_scale_to_zero_steps_down_at_the_scale_down_rate() -> None:
    now = LAST + 100
    cfg = config(min_replicas=0)
    assert at(cfg, traffic_then_idle(now), now, ready=4).desired == 2
    assert at(cfg, traffic_then_idle(now), now, ready=2).desired == 1
    assert at(cfg, traffic_then_idle(now), now, ready=1).desired == 0


def test_scale_to_zero_is_careful_right_after_start_up() -> None:
    cfg = config(min_replicas=0)
    # First decision ever, five seconds of zeros on record: we do not know it was idle before.
    d = at(cfg, series(0.0, T0, T0 + 5), T0 + 5, ready=1)
    assert d.desired == 1
    assert d.state.last_active == T0
    # The remembered activity beats an idle-looking (trimmed) sample buffer.
    recent = AutoscalerState(last_active=T0 + 100)
    d = at(cfg, series(0.0, T0 + 101, T0 + 130), T0 + 130, ready=1, state=recent)
    assert d.desired == 1


def test_a_held_request_blocks_scale_to_zero() -> None:
    now = LAST + 1000
    d = at(config(min_replicas=0), traffic_then_idle(now), now, ready=1, held=1)
    assert d.desired == 1
    assert d.state.last_active == now


def test_an_idle_endpoint_at_zero_stays_at_zero() -> None:
    d = at(config(min_replicas=0), series(0.0, T0, NOW), NOW, ready=0, current=0)
    assert (d.desired, d.scale_from_zero) == (0, False)


def test_a_night_schedule_allows_zero() -> None:
    night = Schedule(name="night", start="00:00", end="00:00", min_replicas=0)
    now = LAST + 100
    assert at(config(schedules=(night,)), traffic_then_idle(now), now, ready=1).desired == 0


# --- scale from zero -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "hi", "expected"),
    [(1, 10, 1), (10, 10, 1), (11, 10, 2), (35, 10, 4), (500, 3, 3)],
)
def test_scale_from_zero_on_held_requests(held: int, hi: int, expected: int) -> None:
    cfg = config(min_replicas=0, max_replicas=hi)
    # Idle for a long time, state from long ago: no grace, no window, no delay.
    state = AutoscalerState(last_active=T0 - 10_000)
    d = at(cfg, series(0.0, T0, NOW), NOW, ready=0, current=0, state=state, held=held)
    assert d.desired == expected
    assert d.scale_from_zero
    assert d.state.last_active == NOW
    assert "scale from zero" in d.reason


def test_scale_from_zero_with_no_samples_at_all() -> None:
    d = at(config(min_replicas=0), [], T0, ready=0, current=0, held=1)
    assert (d.desired, d.scale_from_zero) == (1, True)


def test_scale_from_zero_on_traffic_in_the_window() -> None:
    samples = series(0.0, T0, NOW - 6) + series(25.0, NOW - 5, NOW)
    d = at(config(min_replicas=0), samples, NOW, ready=0, current=0)
    assert d.scale_from_zero
    assert d.desired == 3  # ceil(25 / 10) from the panic window


def test_scale_from_zero_rps_sized_by_rate() -> None:
    cfg = config(min_replicas=0, metric="rps", target=100.0)
    samples = series(0.0, T0, NOW - 6) + series(0.0, NOW - 5, NOW, rps=250.0)
    d = at(cfg, samples, NOW, ready=0, current=0, held=2)
    assert (d.desired, d.scale_from_zero) == (3, True)


def test_min_above_zero_is_not_a_scale_from_zero() -> None:
    d = at(config(min_replicas=2), series(0.0, T0, NOW), NOW, ready=0, current=0)
    assert (d.desired, d.scale_from_zero) == (2, False)


# --- utilization ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("util", "ready", "expected"),
    [
        (70.0, 4, 4),
        (35.0, 4, 2),  # ceil(4 x 35 / 70)
        (105.0, 2, 3),
        (100.0, 7, 10),
        (0.0, 3, 1),
    ],
)
def test_utilization_uses_the_hpa_formula(util: float, ready: int, expected: int) -> None:
    cfg = config(metric="utilization", target=70.0)
    d = at(cfg, series(1.0, T0, NOW, utilization=util), NOW, ready=ready)
    assert d.desired == expected
    assert not d.panic  # 100% / 70% can never reach a 2x panic threshold
    assert d.reason.startswith("stable: utilization")


def test_utilization_unmeasured_holds_current() -> None:
    cfg = config(metric="utilization", target=70.0)
    d = at(cfg, series(50.0, T0, NOW), NOW, ready=5, current=5)
    assert d.desired == 5
    assert "utilization unmeasured" in d.reason
    d = at(cfg, series(50.0, T0, NOW, utilization=90.0), NOW, ready=0, current=3)
    assert d.desired == 3


def test_utilization_ignores_unmeasured_samples_in_the_average() -> None:
    cfg = config(metric="utilization", target=50.0)
    samples = series(1.0, T0, NOW - 30, utilization=100.0) + series(1.0, NOW - 29, NOW)
    d = at(cfg, samples, NOW, ready=2)
    assert d.inputs["stable_average"] == pytest.approx(100.0)
    assert d.desired == 4


def test_utilization_endpoint_scales_to_zero_on_traffic_not_utilization() -> None:
    cfg = config(min_replicas=0, metric="utilization", target=70.0)
    samples = series(0.0, T0, NOW, utilization=5.0)  # idle but background load
    assert at(cfg, samples, NOW, ready=1).desired == 0


# --- the function itself -------------------------------------------------------------------------


def test_deterministic_and_does_not_mutate_inputs() -> None:
    cfg = config(min_replicas=0)
    samples = burst(10.0, 80.0)
    samples.reverse()  # out of order on purpose: decide sorts a copy
    before = copy.deepcopy(samples)
    state = AutoscalerState(last_active=T0)
    first = decide(cfg, samples, ready=2, current=2, state=state, now=NOW)
    second = decide(cfg, samples, ready=2, current=2, state=state, now=NOW)
    assert first == second
    assert samples == before
    assert state == AutoscalerState(last_active=T0)
    with pytest.raises(TypeError):
        first.inputs["desired_stable"] = 0.0  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        first.state.max_panic_replicas = 1  # type: ignore[misc]


def test_state_round_trips_through_plain_values() -> None:
    state = AutoscalerState(panic_until=5.0, panic_started=1.5, max_panic_replicas=3, last_active=2.0)
    assert AutoscalerState.from_dict(state.as_dict()) == state
    assert AutoscalerState.from_dict({}) == AutoscalerState()


def test_samples_after_now_are_ignored() -> None:
    samples = series(10.0, T0, NOW) + series(1000.0, NOW + 1, NOW + 10)
    assert at(config(), samples, NOW, ready=1).desired == 1


@pytest.mark.parametrize(
    "kwargs", [{"ready": -1}, {"current": -1}, {"held_requests": -1}, {"now": float("nan")}]
)
def test_bad_arguments_are_rejected(kwargs: dict[str, float]) -> None:
    args: dict[str, object] = {"ready": 1, "current": 1, "now": NOW, "held_requests": 0, **kwargs}
    with pytest.raises(ValueError, match="counts"):
        decide(config(), [], state=AutoscalerState(), **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"min_replicas": -1},
        {"min_replicas": 5, "max_replicas": 4},
        {"max_replicas": 0},
        {"metric": "latency"},
        {"target": 0.0},
        {"panic_window": 61.0},
        {"max_scale_up_rate": 1.0},
        {"max_scale_down_rate": 0.5},
        {"scale_to_zero_grace": -1.0},
        {"target": float("inf")},
    ],
)
def test_config_is_validated(overrides: dict[str, object]) -> None:
    base = {"min_replicas": 1, "max_replicas": 3}
    with pytest.raises(ValueError, match=r"out of range|must be"):
        AutoscalerConfig(**{**base, **overrides})  # type: ignore[arg-type]


def test_a_cold_start_in_panic_records_what_it_asked_for() -> None:
    # From zero, 3 rps against a target of 1 panics; the up-rate (2 x 1) limits the panic count to 2,
    # the cold start asks for 3: the panic must remember 3, not 2.
    cfg = config(min_replicas=0, max_replicas=3, metric="rps", target=1.0, max_scale_up_rate=2.0)
    samples = series(0.0, T0, NOW - 6) + series(0.0, NOW - 5, NOW, rps=3.0)
    d = at(cfg, samples, NOW, ready=0, current=0, held=3)
    assert (d.desired, d.panic, d.scale_from_zero) == (3, True, True)
    assert d.state.max_panic_replicas == 3
