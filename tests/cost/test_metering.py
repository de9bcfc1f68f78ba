"""The metering model: validation, quantities, and how samples become one number per window."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from pilothouse.api.modelendpoint import Resources
from pilothouse.cost import (
    MeteredInterval,
    Owner,
    RequestTally,
    ResourceRequests,
    UsageSample,
    Window,
    integrate,
    summarize_usage,
)

from .builders import GIB, at, interval, sample

D = Decimal


@pytest.mark.parametrize(
    ("points", "span", "integral"),
    [
        # one sample holds for the whole span, before and after it: 3 x 10 h = 30 unit-hours
        ([(5, "3")], (0, 10), D(3 * 36000)),
        # step function: 4 for hours 0-5, 0 for hours 5-10 -> 4 x 5 h
        ([(0, "4"), (5, "0")], (0, 10), D(4 * 18000)),
        # the sample in force at the span's start is the last one before it
        ([(0, "1"), (2, "6"), (8, "2")], (4, 10), D(6 * 4 * 3600 + 2 * 2 * 3600)),
        # samples after the span do not leak into it
        ([(0, "1"), (20, "100")], (0, 10), D(36000)),
        # unsorted input is fine
        ([(5, "0"), (0, "4")], (0, 10), D(4 * 18000)),
        # no samples: unknown
        ([], (0, 10), None),
    ],
)
def test_integrate_step_function(
    points: list[tuple[float, str]], span: tuple[float, float], integral: Decimal | None
) -> None:
    window = Window(at(span[0]), at(span[1]))
    assert integrate([(at(h), D(v)) for h, v in points], window) == integral


def test_summary_averages_each_metric_separately() -> None:
    samples = [
        sample(0, cpu="2", gpu_util="10"),
        sample(5, cpu="4"),  # no GPU reading: GPU stays 10 until the next GPU reading
        sample(8, gpu_util="60"),
    ]
    summary = summarize_usage(samples, Window(at(0), at(10)))
    assert summary.cpu_cores == D(3)  # (2 x 5 + 4 x 5) / 10
    assert summary.gpu_utilization == D(20)  # (10 x 8 + 60 x 2) / 10
    assert summary.memory_bytes is None
    assert summary.gpu_memory_bytes is None


def test_requests_from_quantities_and_from_the_api() -> None:
    assert ResourceRequests.of("500m", "2Gi", {"nvidia.com/gpu": "0.5"}) == ResourceRequests(
        cpu_cores=D("0.5"), memory_bytes=D(2 * GIB), accelerators={"nvidia.com/gpu": D("0.5")}
    )
    resources = Resources.model_validate({"cpu": "4", "memory": "32Gi", "accelerators": "nvidia.com/gpu: 2"})
    got = ResourceRequests.from_api(resources, gpu_model="H100")
    assert got == ResourceRequests(
        cpu_cores=D(4), memory_bytes=D(32 * GIB), accelerators={"nvidia.com/gpu:H100": D(2)}
    )
    assert got.gpus == D(2)
    assert ResourceRequests.of(accelerators={"nvidia.com/gpu": 0}).accelerators == {}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ResourceRequests(cpu_cores=D(-1)), "cpu_cores must not be negative"),
        (lambda: ResourceRequests(accelerators={"nvidia.com/gpu": D(-1)}), "must not be negative"),
        (lambda: UsageSample(at=at(0), gpu_utilization=D(101)), "percent"),
        (lambda: UsageSample(at=datetime(2025, 1, 1)), "timezone-aware"),
        (lambda: RequestTally(at=at(0), count=-1), "must not be negative"),
        (lambda: Owner("Team", "a", "b"), "owner kind"),  # type: ignore[arg-type]
        (lambda: Owner("Job", "", "b"), "must not be empty"),
        (lambda: interval(start=5, end=4), "before start"),
        (lambda: interval(pool=""), "pool must not be empty"),
        (lambda: ResourceRequests.of(cpu="lots"), "not a Kubernetes quantity"),
    ],
)
def test_validation(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_interval_sorts_its_samples() -> None:
    job = interval(samples=[sample(5, cpu="1"), sample(0, cpu="2")])
    assert [s.at for s in job.samples] == [at(0), at(5)]
    assert isinstance(job, MeteredInterval) and job.team == "a"
