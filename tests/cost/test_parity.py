"""Cost parity with OpenCost's formula, to the cent, with the arithmetic written out.

Default prices (OpenCost's defaults): $0.031611 per core-hour, $0.004237 per GiB-hour, $0.95 per
GPU-hour. CPU and memory: max(request, time-weighted average usage) x hours x price. GPU: request x
hours x price. Cents are half-even.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from pilothouse.cost import (
    PoolCapacity,
    PriceBook,
    Window,
    aggregate,
    allocate,
    load_price_book,
    to_cents,
)

from .builders import GIB, at, interval, sample

D = Decimal
BOOK = PriceBook()
TEN_HOURS = Window(at(0), at(10))


def cents(value: Decimal) -> Decimal:
    return to_cents(value)


def test_request_above_usage_charges_the_request() -> None:
    # 2 cores requested, 0.5 used; 8 GiB requested, 2 GiB used; 10 h.
    # cpu    = max(2, 0.5) x 10 x 0.031611 = 0.63222  -> $0.63
    # memory = max(8, 2)   x 10 x 0.004237 = 0.33896  -> $0.34
    # total  = 0.97118 -> $0.97
    job = interval(cpu=2, memory_gib=8, samples=[sample(0, cpu="0.5", memory_gib="2")])
    (row,) = allocate([job], BOOK, TEN_HOURS, at(10)).intervals
    assert row.cpu_cost == D("0.63222")
    assert row.memory_cost == D("0.33896")
    assert (cents(row.cpu_cost), cents(row.memory_cost), cents(row.total)) == (
        D("0.63"),
        D("0.34"),
        D("0.97"),
    )
    assert row.cpu_core_hours == D(20)
    assert row.memory_gib_hours == D(80)


def test_usage_above_request_charges_the_usage() -> None:
    # 1 core requested, 3 used; 4 GiB requested, 16 GiB used; 10 h.
    # cpu    = max(1, 3)  x 10 x 0.031611 = 0.94833 -> $0.95
    # memory = max(4, 16) x 10 x 0.004237 = 0.67792 -> $0.68
    job = interval(cpu=1, memory_gib=4, samples=[sample(0, cpu="3", memory_gib="16")])
    (row,) = allocate([job], BOOK, TEN_HOURS, at(10)).intervals
    assert row.cpu_cost == D("0.94833")
    assert row.memory_cost == D("0.67792")
    assert (cents(row.cpu_cost), cents(row.memory_cost)) == (D("0.95"), D("0.68"))


def test_usage_is_a_time_weighted_average_not_a_peak() -> None:
    # 1 core requested; 4 cores used for 5 h, then 0 for 5 h: average = (4x5 + 0x5) / 10 = 2 cores.
    # cpu = max(1, 2) x 10 x 0.031611 = 0.63222 -> $0.63 (a peak rule would say 4 x 10 x ... = $1.26)
    job = interval(cpu=1, samples=[sample(0, cpu="4"), sample(5, cpu="0")])
    (row,) = allocate([job], BOOK, TEN_HOURS, at(10)).intervals
    assert row.cpu_cost == D("0.63222")
    assert row.usage is not None and row.usage.cpu_cores == D(2)


def test_fractional_gpu_is_charged_by_its_fraction() -> None:
    # 0.5 GPU for 10 h = 0.5 x 10 x 0.95 = $4.75
    job = interval(gpus="0.5")
    (row,) = allocate([job], BOOK, TEN_HOURS, at(10)).intervals
    assert row.gpu_cost == D("4.75")
    assert row.gpu_hours == D(5)


@pytest.mark.parametrize("util", ["0", "100"])
def test_gpu_is_charged_by_request_whatever_its_utilization(util: str) -> None:
    # 1 GPU for 10 h = 1 x 10 x 0.95 = $9.50 at 0% and at 100% utilization (OpenCost: GPUHours = request x h)
    job = interval(gpus=1, samples=[sample(0, gpu_util=util)])
    (row,) = allocate([job], BOOK, TEN_HOURS, at(10)).intervals
    assert row.gpu_cost == D("9.50")


def _two_teams_on_four_gpus(idle: str) -> list[tuple[str | int | None, Decimal, Decimal]]:
    a = interval("train", team="a", gpus=2)
    b = interval("train", team="b", gpus=1)
    allocation = allocate(
        [a, b],
        BOOK,
        TEN_HOURS,
        at(10),
        capacity=[PoolCapacity("local", accelerators={"nvidia.com/gpu": D(4)})],
        idle="separate" if idle == "separate" else "share",
    )
    return [(r.key["team"], r.shared_idle_cost, r.total_cost) for r in aggregate(allocation, "team")]


def test_idle_separate_is_its_own_row() -> None:
    # 4-GPU pool, 10 h: capacity = 4 x 10 x 0.95 = $38.00
    # A: 2 x 10 x 0.95 = $19.00; B: 1 x 10 x 0.95 = $9.50; __idle__ = (4 - 3) x 10 x 0.95 = $9.50
    assert _two_teams_on_four_gpus("separate") == [
        ("a", D(0), D("19.00")),
        ("b", D(0), D("9.50")),
        ("__idle__", D(0), D("9.50")),
    ]


def test_idle_shared_in_proportion_to_cost() -> None:
    # The $9.50 idle goes 2/3 to A (GPU cost 19.00 of 28.50) and 1/3 to B (9.50 of 28.50):
    # A: 9.50 x 2/3 = 6.333333333 (nano-dollars; the leftover nano-dollar goes to the larger remainder)
    # B: 9.50 x 1/3 = 3.166666667;  A total 25.33, B total 12.67, sum 38.00, no __idle__ row.
    rows = _two_teams_on_four_gpus("share")
    assert rows == [("a", D("6.333333333"), D("25.333333333")), ("b", D("3.166666667"), D("12.666666667"))]
    assert [cents(total) for _, _, total in rows] == [D("25.33"), D("12.67")]


def test_idle_is_shared_per_resource() -> None:
    # Pool: 2 GPUs and 10 cores for 10 h. A: 1 GPU, 0 cores; B: 0 GPUs, 5 cores.
    # idle GPU = 1 x 10 x 0.95 = 9.50 -> all to A (the only GPU user)
    # idle CPU = 5 x 10 x 0.031611 = 1.58055 -> all to B (the only CPU user)
    a = interval("gpu", team="a", gpus=1)
    b = interval("cpu", team="b", cpu=5)
    allocation = allocate(
        [a, b],
        BOOK,
        TEN_HOURS,
        at(10),
        capacity=[PoolCapacity("local", cpu_cores=D(10), accelerators={"nvidia.com/gpu": D(2)})],
        idle="share",
    )
    shares = {r.owner.namespace: r.shared_idle_cost for r in allocation.intervals}
    assert shares == {"a": D("9.50"), "b": D("1.58055")}


def test_node_pool_price_override() -> None:
    # Pool h100: $2.50 per GPU-hour, $0.05 per core-hour; memory inherits $0.004237.
    # 1 GPU, 4 cores, 16 GiB for 10 h on h100:
    # gpu = 1 x 10 x 2.50 = 25.00; cpu = 4 x 10 x 0.05 = 2.00; memory = 16 x 10 x 0.004237 = 0.67792
    # total = 27.67792 -> $27.68. The same on the default pool: 9.50 + 1.26444 + 0.67792 = 11.44236 -> $11.44
    book = load_price_book({"pools": {"h100": {"gpuHour": "2.50", "cpuCoreHour": "0.05"}}})
    on_h100 = interval("big", pool="h100", gpus=1, cpu=4, memory_gib=16)
    on_local = interval("small", pool="local", gpus=1, cpu=4, memory_gib=16)
    rows = {r.interval.pool: r for r in allocate([on_h100, on_local], book, TEN_HOURS, at(10)).intervals}
    assert (rows["h100"].gpu_cost, rows["h100"].cpu_cost, rows["h100"].memory_cost) == (
        D("25.00"),
        D("2.00"),
        D("0.67792"),
    )
    assert cents(rows["h100"].total) == D("27.68")
    assert cents(rows["local"].total) == D("11.44")


def test_gpu_model_prices() -> None:
    # Top level: nvidia.com/gpu:H100 at $3.00; pool spot sets gpuHour 0.40 and inherits the H100 price.
    # H100 on default pool: 1 x 10 x 3.00 = 30.00; H100 on spot: 30.00 (model price inherited);
    # L4 (no entry) on spot: 1 x 10 x 0.40 = 4.00; L4 on default pool: 1 x 10 x 0.95 = 9.50
    book = load_price_book({"accelerators": {"nvidia.com/gpu:H100": 3}, "pools": {"spot": {"gpuHour": 0.4}}})
    cases = [
        interval("h-local", accelerators={"nvidia.com/gpu:H100": 1}),
        interval("h-spot", pool="spot", accelerators={"nvidia.com/gpu:H100": 1}),
        interval("l4-spot", pool="spot", accelerators={"nvidia.com/gpu:L4": 1}),
        interval("l4-local", accelerators={"nvidia.com/gpu:L4": 1}),
    ]
    costs = {r.owner.name: r.gpu_cost for r in allocate(cases, book, TEN_HOURS, at(10)).intervals}
    assert costs == {"h-local": D(30), "h-spot": D(30), "l4-spot": D("4.00"), "l4-local": D("9.50")}


def test_interval_partially_inside_the_window_is_clipped() -> None:
    # Interval 20:00 on day 1 to 08:00 on day 2 (12 h); window = day 2: 8 h inside.
    # gpu = 1 x 8 x 0.95 = $7.60; cpu = 2 x 8 x 0.031611 = 0.505776 -> $0.51
    job = interval(gpus=1, cpu=2, start=20, end=32)
    day2 = Window(at(24), at(48))
    (row,) = allocate([job], BOOK, day2, at(48)).intervals
    assert row.gpu_cost == D("7.60")
    assert row.cpu_cost == D("0.505776")
    assert cents(row.cpu_cost) == D("0.51")
    assert row.span == Window(at(24), at(32))


def test_sample_before_the_window_holds_into_it() -> None:
    # One sample of 3 cores at hour 0; window hours 5-10: the 3 cores hold throughout.
    # cpu = max(1, 3) x 5 x 0.031611 = 0.474165 -> $0.47
    job = interval(cpu=1, samples=[sample(0, cpu="3")])
    (row,) = allocate([job], BOOK, Window(at(5), at(10)), at(10)).intervals
    assert row.cpu_cost == D("0.474165")


def test_running_interval_is_charged_up_to_now() -> None:
    # Started 6 h before now, still running (end None); window: the last 24 h.
    # gpu = 1 x 6 x 0.95 = $5.70; cpu = 1 x 6 x 0.031611 = 0.189666 -> $0.19
    job = interval(gpus=1, cpu=1, start=18, end=None)
    (row,) = allocate([job], BOOK, Window(at(0), at(24)), at(24)).intervals
    assert row.gpu_cost == D("5.70")
    assert cents(row.cpu_cost) == D("0.19")


def test_nothing_is_charged_after_now() -> None:
    # Window = the whole day, now = hour 6: capacity 1 GPU x 6 h x 0.95 = 5.70, not 24 h.
    # The job (end None) ran hours 2-6: 4 x 0.95 = 3.80; idle = 5.70 - 3.80 = 1.90
    job = interval(gpus=1, start=2, end=None)
    allocation = allocate(
        [job],
        BOOK,
        Window(at(0), at(24)),
        at(6),
        capacity=[PoolCapacity("local", accelerators={"nvidia.com/gpu": D(1)})],
    )
    assert allocation.window == Window(at(0), at(6))
    (pool,) = allocation.pools
    assert (pool.capacity_cost, pool.allocated_cost, pool.idle_gpu_cost) == (D("5.70"), D("3.80"), D("1.90"))


def test_cost_per_thousand_requests() -> None:
    # An endpoint replica with 1 GPU for 10 h = $9.50; 12,000 + 7,000 = 19,000 requests in the window
    # (a tally at hour 11 is outside it). 9.50 / 19,000 x 1,000 = $0.50 per 1,000 requests.
    replica = interval(
        "chat", kind="ModelEndpoint", gpus=1, end=12, tallies=[(4, 12_000), (9.5, 7_000), (11, 5_000)]
    )
    allocation = allocate([replica], BOOK, TEN_HOURS, at(12))
    (row,) = aggregate(allocation, "endpoint")
    assert row.requests == 19_000
    assert row.cost_per_1k_requests == D("0.50")
    assert row.record()["cost_per_1k_requests"] == "0.50"


def test_cost_per_thousand_requests_sums_replicas_and_revisions() -> None:
    # Revision 1: one replica, 1 GPU for 10 h = 9.50, 5,000 requests -> 1.90 per 1k
    # Revision 2: two replicas of 0.5 GPU for 10 h = 4.75 each = 9.50, 15,000 requests -> 0.633333333 per 1k
    # Endpoint: 19.00 / 20,000 x 1,000 = 0.95 per 1k
    r1 = interval("chat", kind="ModelEndpoint", gpus=1, revision=1, tallies=[(5, 5_000)], id="r1")
    r2a = interval("chat", kind="ModelEndpoint", gpus="0.5", revision=2, tallies=[(5, 7_500)], id="r2a")
    r2b = interval("chat", kind="ModelEndpoint", gpus="0.5", revision=2, tallies=[(5, 7_500)], id="r2b")
    allocation = allocate([r1, r2a, r2b], BOOK, TEN_HOURS, at(10))
    per_revision = {r.key["revision"]: r.cost_per_1k_requests for r in aggregate(allocation, "revision")}
    assert per_revision == {1: D("1.90"), 2: D("0.633333333")}
    (endpoint,) = aggregate(allocation, "endpoint")
    assert endpoint.cost_per_1k_requests == D("0.95")


def test_memory_in_bytes_uses_gib() -> None:
    # 1.5 GiB (1610612736 bytes) requested for 10 h: 1.5 x 10 x 0.004237 = 0.063555 -> $0.06
    job = interval(memory_gib="1.5")
    assert job.requested.memory_bytes == D(1610612736) == D("1.5") * GIB
    (row,) = allocate([job], BOOK, TEN_HOURS, at(10)).intervals
    assert row.memory_cost == D("0.063555")
