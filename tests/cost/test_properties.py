"""Properties of allocation that must hold for any data: conservation, idle modes agree, no negatives."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from pilothouse.cost import (
    VIEWS,
    Allocation,
    Kind,
    MeteredInterval,
    Owner,
    PoolCapacity,
    PriceBook,
    RequestTally,
    ResourceRequests,
    UsageSample,
    Window,
    aggregate,
    allocate,
    total_row,
)
from pilothouse.cost.metering import KINDS
from pilothouse.cost.money import NANO, split

from .builders import GIB, T0, interval

D = Decimal
POOLS = ("local", "h100")
GPU_KEYS = ("nvidia.com/gpu", "nvidia.com/gpu:H100")
BOOK = PriceBook.model_validate(
    {
        "accelerators": {"nvidia.com/gpu:H100": "2.99"},
        "pools": {"h100": {"gpuHour": "2.10", "cpuCoreHour": "0.05", "memoryGiBHour": "0.0071"}},
    }
)

minutes = st.integers(min_value=0, max_value=48 * 60)
quarters = st.integers(min_value=0, max_value=32).map(lambda n: D(n) / 4)


@st.composite
def samples(draw: st.DrawFn) -> UsageSample:
    return UsageSample(
        at=T0 + timedelta(minutes=draw(minutes)),
        cpu_cores=draw(st.none() | quarters),
        memory_bytes=draw(st.none() | st.integers(0, 64).map(lambda g: D(g * GIB))),
        gpu_utilization=draw(st.none() | st.integers(0, 100).map(D)),
    )


@st.composite
def intervals(draw: st.DrawFn) -> MeteredInterval:
    start = draw(minutes)
    length = draw(st.none() | st.integers(0, 24 * 60))
    gpu_key = draw(st.sampled_from(GPU_KEYS))
    gpus = draw(st.sampled_from([D(0), D("0.5"), D(1), D(2)]))
    kind: Kind = draw(st.sampled_from(KINDS))
    return MeteredInterval(
        id=f"i{draw(st.integers(0, 10**6))}",
        owner=Owner(kind, draw(st.sampled_from(["a", "b", "c"])), draw(st.sampled_from(["x", "y"]))),
        pool=draw(st.sampled_from(POOLS)),
        requested=ResourceRequests(
            cpu_cores=draw(quarters),
            memory_bytes=D(draw(st.integers(0, 64)) * GIB),
            accelerators={gpu_key: gpus},
        ),
        start=T0 + timedelta(minutes=start),
        end=None if length is None else T0 + timedelta(minutes=start + length),
        revision=1 if kind == "ModelEndpoint" else None,
        attempt=1 if kind == "Job" else None,
        samples=tuple(draw(st.lists(samples(), max_size=3))),
        request_counts=tuple(
            RequestTally(T0 + timedelta(minutes=m), n)
            for m, n in draw(st.lists(st.tuples(minutes, st.integers(0, 10**6)), max_size=2))
        ),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[MeteredInterval], Window, Window, list[PoolCapacity]]:
    """Intervals, a window, ``now`` (as a window from the window start), and capacity that covers them."""
    items = draw(st.lists(intervals(), max_size=6))
    start = T0 + timedelta(minutes=draw(st.integers(0, 24 * 60)))
    window = Window(start, start + timedelta(minutes=draw(st.integers(1, 24 * 60))))
    now = start + timedelta(minutes=draw(st.integers(0, 30 * 60)))
    capacity = []
    for pool in POOLS:
        members = [i for i in items if i.pool == pool]
        # Owned capacity at least every interval's max(request, peak usage), plus some slack.
        cpu = sum(
            (max([i.requested.cpu_cores] + [s.cpu_cores or D(0) for s in i.samples]) for i in members), D(0)
        )
        memory = sum(
            (max([i.requested.memory_bytes] + [s.memory_bytes or D(0) for s in i.samples]) for i in members),
            D(0),
        )
        gpus = {k: sum((i.requested.accelerators.get(k, D(0)) for i in members), D(0)) for k in GPU_KEYS}
        slack = draw(st.integers(0, 4))
        capacity.append(
            PoolCapacity(
                pool,
                cpu_cores=cpu + slack,
                memory_bytes=memory + slack * GIB,
                accelerators={k: v + slack for k, v in gpus.items()},
            )
        )
    return items, window, Window(start, now), capacity


def run(scenario: tuple[list[MeteredInterval], Window, Window, list[PoolCapacity]], idle: str) -> Allocation:
    items, window, now, capacity = scenario
    return allocate(
        items, BOOK, window, now.end, capacity=capacity, idle="share" if idle == "share" else "separate"
    )


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_allocated_plus_idle_is_capacity(scenario: tuple) -> None:  # type: ignore[type-arg]
    allocation = run(scenario, "separate")
    for pool in allocation.pools:
        assert pool.overage_cost == 0  # capacity covers every max(request, peak usage)
        assert pool.allocated_cost + pool.idle_cost == pool.capacity_cost
    capacity_cost = sum((p.capacity_cost for p in allocation.pools), D(0))
    assert allocation.workload_cost + allocation.idle_cost == capacity_cost == allocation.total


def test_rows_that_exactly_fill_a_pool_are_not_overage_by_rounding() -> None:
    # Found by test_allocated_plus_idle_is_capacity: two 3.5-core rows for one minute on a 7-core pool at
    # $0.05 per core-hour each round up to 0.002916667, one nano above half the pool's 0.005833333.
    rows = [interval(f"w{i}", pool="h100", cpu="3.5", start=0, end=1 / 60) for i in range(2)]
    window = Window(T0, T0 + timedelta(minutes=1))
    pool = PoolCapacity("h100", cpu_cores=D(7), memory_bytes=D(0), accelerators={})
    allocation = allocate(rows, BOOK, window, window.end, capacity=[pool], idle="separate")
    [idle] = allocation.pools
    assert [row.cost for row in allocation.intervals] == [D("0.002916667")] * 2
    assert (idle.overage_cost, idle.idle_cost) == (0, 0)
    assert idle.capacity_cost == idle.allocated_cost == D("0.005833334")


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_shared_total_equals_separate_total(scenario: tuple) -> None:  # type: ignore[type-arg]
    separate, shared = run(scenario, "separate"), run(scenario, "share")
    assert shared.total == separate.total
    own = [c.cost for c in separate.intervals]
    assert [c.cost for c in shared.intervals] == own  # sharing moves idle, never changes own cost
    for pool in shared.pools:
        here = [c for c in shared.intervals if c.interval.pool == pool.pool]
        # idle of a resource stays __idle__ only when nobody on the pool was charged for that resource
        assert pool.unshared_cpu_cost == 0 or not any(c.cpu_cost for c in here)
        assert pool.unshared_memory_cost == 0 or not any(c.memory_cost for c in here)
        assert pool.unshared_gpu_cost <= pool.idle_gpu_cost


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.sampled_from(["separate", "share"]))
def test_costs_are_never_negative(scenario: tuple, idle: str) -> None:  # type: ignore[type-arg]
    allocation = run(scenario, idle)
    for c in allocation.intervals:
        assert min(c.cpu_cost, c.memory_cost, c.gpu_cost, c.shared_idle_cost, c.idle_gpu_cost) >= 0
        assert c.idle_gpu_cost <= c.gpu_cost
    for p in allocation.pools:
        assert min(p.idle_cost, p.unshared_cost, p.overage_cost, p.capacity_cost) >= 0
    for name in VIEWS:
        for row in aggregate(allocation, name):
            assert row.total_cost >= 0 and (row.cost_per_1k_requests or 0) >= 0


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.sampled_from(["separate", "share"]))
def test_views_sum_to_the_total(scenario: tuple, idle: str) -> None:  # type: ignore[type-arg]
    allocation = run(scenario, idle)
    by_team = aggregate(allocation, "team")
    assert sum((r.total_cost for r in by_team), D(0)) == allocation.total
    for name, view in VIEWS.items():
        if view.kinds is None:
            assert total_row(aggregate(allocation, name)).total_cost == allocation.total
    endpoints = total_row(aggregate(allocation, "endpoint")).total_cost
    jobs = total_row(aggregate(allocation, "job")).total_cost
    assert endpoints + jobs + allocation.idle_cost == allocation.total


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.integers(1, 24 * 60 - 1))
def test_gpu_cost_is_additive_over_split_windows(scenario: tuple, cut: int) -> None:  # type: ignore[type-arg]
    items, window, _, _ = scenario
    now = window.end + timedelta(days=3)
    middle = min(window.start + timedelta(minutes=cut), window.end)
    whole = allocate(items, BOOK, window, now)
    parts = [
        allocate(items, BOOK, w, now) for w in (Window(window.start, middle), Window(middle, window.end))
    ]
    gpu_whole = sum((c.gpu_cost for c in whole.intervals), D(0))
    gpu_parts = sum((c.gpu_cost for p in parts for c in p.intervals), D(0))
    # Each charge is quantized to the nano-dollar once, so the parts may differ by that per charge.
    assert abs(gpu_whole - gpu_parts) <= NANO * 2 * len(items)
    # CPU and memory take max(request, average) per window, so splitting a window can only add cost.
    cpu_whole = sum((c.cpu_cost + c.memory_cost for c in whole.intervals), D(0))
    cpu_parts = sum((c.cpu_cost + c.memory_cost for p in parts for c in p.intervals), D(0))
    assert cpu_parts >= cpu_whole - NANO * 4 * len(items)


@given(
    st.integers(0, 10**12).map(lambda n: D(n) * NANO),
    st.lists(st.integers(0, 10**6).map(D), min_size=1, max_size=8).filter(any),
)
def test_split_adds_up_and_stays_within_a_nano_dollar(total: Decimal, weights: list[Decimal]) -> None:
    parts = split(total, weights)
    assert sum(parts, D(0)) == total
    weight_sum = sum(weights, D(0))
    for part, weight in zip(parts, weights, strict=True):
        exact_share = Fraction(total) * Fraction(weight) / Fraction(weight_sum)
        assert part >= 0
        assert abs(Fraction(part) - exact_share) < Fraction(NANO)
