"""GPU allocated but idle: an interval whose time-weighted GPU utilization is under the threshold."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pilothouse.cost import PriceBook, UsageSample, Window, aggregate, allocate

from .builders import at, interval, sample

D = Decimal
TEN_HOURS = Window(at(0), at(10))


@pytest.mark.parametrize(
    ("samples", "idle_cost", "utilization"),
    [
        # 5% all along: under 10% -> the whole GPU cost, 1 x 10 x 0.95 = 9.50, is idle GPU cost
        ([sample(0, gpu_util="5")], D("9.50"), D(5)),
        # 50%: busy enough -> zero
        ([sample(0, gpu_util="50")], D(0), D(50)),
        # exactly 10% is not *under* 10%
        ([sample(0, gpu_util="10")], D(0), D(10)),
        # 0% for 9 h then 100% for 1 h: average (0x9 + 100x1) / 10 = 10% -> not idle
        ([sample(0, gpu_util="0"), sample(9, gpu_util="100")], D(0), D(10)),
        # 0% for 9.5 h then 100% for 0.5 h: average 5% -> idle
        ([sample(0, gpu_util="0"), sample(9.5, gpu_util="100")], D("9.50"), D(5)),
        # no GPU samples at all: unknown, never flagged
        ([sample(0, cpu="1")], D(0), None),
        ([], D(0), None),
    ],
)
def test_gpu_idle_detection(
    samples: list[UsageSample], idle_cost: Decimal, utilization: Decimal | None
) -> None:
    job = interval(gpus=1, samples=samples)
    (row,) = allocate([job], PriceBook(), TEN_HOURS, at(10)).intervals
    assert row.idle_gpu_cost == idle_cost
    assert row.gpu_utilization == utilization
    assert row.gpu_cost == D("9.50")  # idle GPU cost is a label on cost already charged, not extra


def test_threshold_is_configurable() -> None:
    job = interval(gpus=2, samples=[sample(0, gpu_util="50")])
    # 2 x 10 x 0.95 = 19.00 idle when the bar is 60%
    (row,) = allocate([job], PriceBook(), TEN_HOURS, at(10), gpu_idle_threshold=60).intervals
    assert row.idle_gpu_cost == D("19.00")


def test_utilization_counts_only_inside_the_window() -> None:
    # Busy (90%) hours 0-5, idle (1%) hours 5-10. Window hours 5-10: 1% -> idle, 1 x 5 x 0.95 = 4.75.
    job = interval(gpus=1, samples=[sample(0, gpu_util="90"), sample(5, gpu_util="1")])
    (row,) = allocate([job], PriceBook(), Window(at(5), at(10)), at(10)).intervals
    assert row.idle_gpu_cost == D("4.75")
    (whole,) = allocate([job], PriceBook(), TEN_HOURS, at(10)).intervals
    assert whole.idle_gpu_cost == D(0)  # average 45.5% over the whole 10 h


def test_cpu_only_interval_is_never_gpu_idle() -> None:
    job = interval(cpu=1, samples=[sample(0, gpu_util="0")])
    (row,) = allocate([job], PriceBook(), TEN_HOURS, at(10)).intervals
    assert row.idle_gpu_cost == D(0)
    assert row.gpu_utilization is None


def test_idle_gpu_cost_is_shown_per_endpoint_and_job() -> None:
    # Endpoint "chat": replica r1 idle (2%) 9.50, replica r2 busy (80%) 9.50 -> idle GPU cost 9.50 of 19.00;
    # GPU-hour-weighted utilization (2 x 10 + 80 x 10) / 20 = 41%.  Job "train": busy -> 0.
    chat1 = interval("chat", kind="ModelEndpoint", gpus=1, samples=[sample(0, gpu_util="2")], id="r1")
    chat2 = interval("chat", kind="ModelEndpoint", gpus=1, samples=[sample(0, gpu_util="80")], id="r2")
    train = interval("train", kind="Job", gpus=4, samples=[sample(0, gpu_util="95")])
    allocation = allocate([chat1, chat2, train], PriceBook(), TEN_HOURS, at(10))
    (endpoint,) = aggregate(allocation, "endpoint")
    assert (endpoint.gpu_cost, endpoint.idle_gpu_cost, endpoint.gpu_utilization) == (
        D("19.00"),
        D("9.50"),
        D(41),
    )
    (job,) = aggregate(allocation, "job")
    assert (job.gpu_cost, job.idle_gpu_cost) == (D("38.00"), D(0))
    (team,) = aggregate(allocation, "team")
    assert team.idle_gpu_cost == D("9.50")
