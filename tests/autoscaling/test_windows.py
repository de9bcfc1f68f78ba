"""Window averages: time-weighted, clipped to the window, careful at start-up and with gaps."""

from __future__ import annotations

import pytest

from pilothouse.autoscaling import MetricSample, window_average

from .builders import T0, series


def conc(s: MetricSample) -> float:
    return s.concurrency


def util(s: MetricSample) -> float | None:
    return s.utilization


def test_regular_samples_give_the_simple_mean() -> None:
    samples = [MetricSample(T0 + i, float(i), 0.0) for i in range(1, 11)]
    avg = window_average(samples, T0 + 10, 4.0, conc)
    assert avg.value == pytest.approx(8.5)  # 7, 8, 9, 10
    assert avg.samples == 4


def test_empty_window_is_zero_traffic() -> None:
    assert window_average([], T0, 60.0, conc).value == 0.0
    old = series(50.0, T0, T0 + 10)
    avg = window_average(old, T0 + 100, 60.0, conc)
    assert (avg.value, avg.samples) == (0.0, 0)


def test_start_up_is_not_diluted_by_time_before_the_first_sample() -> None:
    # Five seconds of 40 right after start-up: the 60 s window average is 40, not 40 x 5 / 60.
    avg = window_average(series(40.0, T0, T0 + 4), T0 + 4, 60.0, conc)
    assert avg.value == pytest.approx(40.0)


def test_a_sample_after_a_gap_stands_for_the_whole_gap() -> None:
    # 10 at t=1..5, then nothing until a report of 40 at t=10 (covering 5..10).
    samples = [*series(10.0, T0 + 1, T0 + 5), MetricSample(T0 + 10, 40.0, 0.0)]
    avg = window_average(samples, T0 + 10, 10.0, conc)
    assert avg.value == pytest.approx((10 * 5 + 40 * 5) / 10)


def test_a_sample_straddling_the_window_start_counts_only_inside() -> None:
    samples = [MetricSample(T0, 0.0, 0.0), MetricSample(T0 + 10, 30.0, 0.0), MetricSample(T0 + 12, 0.0, 0.0)]
    # Window (T0+6, T0+12]: the 30 covers (T0, T0+10], 4 s of it inside; the 0 covers 2 s.
    avg = window_average(samples, T0 + 12, 6.0, conc)
    assert avg.value == pytest.approx(30 * 4 / 6)


def test_fractional_window_edges() -> None:
    samples = series(10.0, T0, T0 + 10)
    assert window_average(samples, T0 + 9.5, 2.5, conc).value == pytest.approx(10.0)


def test_unmeasured_samples_add_neither_value_nor_time() -> None:
    samples = series(1.0, T0, T0 + 4, utilization=80.0) + series(1.0, T0 + 5, T0 + 9)
    avg = window_average(samples, T0 + 9, 10.0, util)
    assert avg.value == pytest.approx(80.0)
    assert avg.samples == 5
    assert window_average(series(1.0, T0, T0 + 9), T0 + 9, 10.0, util).samples == 0


def test_repeated_timestamps_fall_back_to_the_plain_mean() -> None:
    samples = [MetricSample(T0, 10.0, 0.0), MetricSample(T0, 30.0, 0.0)]
    # The first has an assumed 1 s span, the duplicate none: time-weighted over 1 s gives 10.
    assert window_average(samples, T0, 60.0, conc).value == pytest.approx(10.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"t": float("nan"), "concurrency": 1.0, "rps": 1.0},
        {"t": T0, "concurrency": -1.0, "rps": 1.0},
        {"t": T0, "concurrency": 1.0, "rps": float("inf")},
        {"t": T0, "concurrency": 1.0, "rps": 1.0, "utilization": -5.0},
    ],
)
def test_bad_samples_are_rejected_where_they_are_built(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        MetricSample(**kwargs)


def test_traffic_means_any_request() -> None:
    assert MetricSample(T0, 0.0, 0.5).traffic
    assert MetricSample(T0, 0.2, 0.0).traffic
    assert not MetricSample(T0, 0.0, 0.0, utilization=40.0).traffic
