"""Views: group-bys over one allocation, the __idle__ row, and table/json/csv output."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from pilothouse.cost import (
    IDLE,
    VIEWS,
    Allocation,
    PoolCapacity,
    PriceBook,
    View,
    Window,
    aggregate,
    allocate,
    to_csv,
    to_records,
    total_row,
)

from .builders import at, interval, sample

D = Decimal


def fleet(idle: str = "separate") -> Allocation:
    """Two teams on an 8-GPU, 64-core pool for 10 h.

    nlp: endpoint chat (rev 1: 1 GPU, rev 2: 2 GPUs) = 3 x 10 x 0.95 = 28.50, 10,000 requests
         job train (attempt 1: 2 GPUs) = 19.00
    vision: job detect (attempt 1 and 2, 1 GPU each, 5 h each) = 2 x 5 x 0.95 = 9.50
    GPU idle = (8 - 6) x 10 x 0.95 = 19.00; CPU idle = 64 x 10 x 0.031611 = 20.23104
    """
    intervals = [
        interval("chat", team="nlp", kind="ModelEndpoint", gpus=1, revision=1, tallies=[(5, 4_000)], id="c1"),
        interval("chat", team="nlp", kind="ModelEndpoint", gpus=2, revision=2, tallies=[(5, 6_000)], id="c2"),
        interval("train", team="nlp", gpus=2, samples=[sample(0, gpu_util="3")]),
        interval("detect", team="vision", gpus=1, attempt=1, end=5),
        interval("detect", team="vision", gpus=1, attempt=2, start=5, end=10),
    ]
    capacity = PoolCapacity("local", cpu_cores=D(64), accelerators={"nvidia.com/gpu": D(8)})
    return allocate(
        intervals,
        PriceBook(),
        Window(at(0), at(10)),
        at(10),
        capacity=[capacity],
        idle="share" if idle == "share" else "separate",
    )


def keys(rows: list) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
    return [tuple(r.key.values()) for r in rows]


def test_team_view_with_idle_row() -> None:
    rows = aggregate(fleet(), "team")
    assert keys(rows) == [("nlp",), ("vision",), (IDLE,)]
    assert [r.total_cost for r in rows] == [D("47.50"), D("9.50"), D("39.23104")]
    assert rows[-1].is_idle and rows[-1].gpu_cost == D("19.00") and rows[-1].cpu_cost == D("20.23104")
    assert rows[0].idle_gpu_cost == D("19.00")  # train sat at 3% GPU


def test_every_unfiltered_view_adds_up_to_the_same_total() -> None:
    allocation = fleet()
    # capacity: 8 x 10 x 0.95 + 64 x 10 x 0.031611 = 76.00 + 20.23104 = 96.23104
    assert allocation.total == D("96.23104")
    for name, view in VIEWS.items():
        rows = aggregate(allocation, name)
        if view.kinds is None:
            assert total_row(rows).total_cost == allocation.total, name


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        ("endpoint", [("nlp", "chat")]),
        ("revision", [("nlp", "chat", 2), ("nlp", "chat", 1)]),
        ("job", [("nlp", "train"), ("vision", "detect")]),
        ("attempt", [("nlp", "train", 1), ("vision", "detect", 1), ("vision", "detect", 2)]),
        ("kind", [("Job",), ("ModelEndpoint",), (IDLE,)]),
        ("namespace", [("nlp",), ("vision",), (IDLE,)]),
        ("pool", [("local",), (IDLE,)]),
        (
            "workload",
            [
                ("ModelEndpoint", "nlp", "chat"),
                ("Job", "nlp", "train"),
                ("Job", "vision", "detect"),
                (IDLE, IDLE, IDLE),
            ],
        ),
    ],
)
def test_views(view: str, expected: list[tuple[object, ...]]) -> None:
    assert keys(aggregate(fleet(), view)) == expected


def test_custom_view_and_unknown_view() -> None:
    rows = aggregate(fleet(), View("team-kind", ("team", "kind")), include_idle=False)
    assert keys(rows) == [("nlp", "ModelEndpoint"), ("nlp", "Job"), ("vision", "Job")]
    with pytest.raises(ValueError, match="unknown cost view 'teams'"):
        aggregate(fleet(), "teams")


def test_shared_idle_only_goes_to_users_of_the_resource() -> None:
    # Idle is split per interval, per resource. GPU idle 19.00 by GPU cost (total 57.00): each of
    # vision's two 4.75 intervals gets 19.00 x 4.75 / 57.00 = 1.58333333333... -> 1.583333333 (the
    # left-over nano-dollars go to the larger remainders, nlp's 9.50 intervals): vision 3.166666666.
    # CPU idle 20.23104: nobody was charged for CPU, so it is not pushed onto GPU workloads; it stays
    # __idle__ (OpenCost leaves such idle undistributed too).
    rows = aggregate(fleet("share"), "team")
    assert keys(rows) == [("nlp",), ("vision",), (IDLE,)]
    assert rows[1].shared_idle_cost == D("3.166666666")
    assert rows[0].shared_idle_cost == D("19.00") - D("3.166666666")
    assert (rows[2].cpu_cost, rows[2].gpu_cost) == (D("20.23104"), D(0))
    assert total_row(rows).total_cost == D("96.23104")


def test_records_and_csv() -> None:
    rows = aggregate(fleet(), "endpoint")
    (record,) = to_records(rows)
    assert record == {
        "team": "nlp",
        "name": "chat",
        "cpu_core_hours": "0.0000",
        "memory_gib_hours": "0.0000",
        "gpu_hours": "30.0000",
        "cpu_cost": "0.00",
        "memory_cost": "0.00",
        "gpu_cost": "28.50",
        "shared_idle_cost": "0.00",
        "total_cost": "28.50",
        "idle_gpu_cost": "0.00",
        "gpu_utilization": None,
        "requests": 10_000,
        "cost_per_1k_requests": "2.85",
    }
    json.dumps(record)  # JSON-ready
    assert to_csv(rows).splitlines() == [
        "team,name,cpu_core_hours,memory_gib_hours,gpu_hours,cpu_cost,memory_cost,gpu_cost,"
        "shared_idle_cost,total_cost,idle_gpu_cost,gpu_utilization,requests,cost_per_1k_requests",
        "nlp,chat,0.0000,0.0000,30.0000,0.00,0.00,28.50,0.00,28.50,0.00,,10000,2.85",
    ]
    assert to_csv([]) == ""


def test_exact_records_keep_nano_dollars() -> None:
    idle = aggregate(fleet(), "team")[-1]
    assert idle.record()["cpu_cost"] == "20.23"
    assert idle.record(exact=True)["cpu_cost"] == "20.231040000"


@pytest.mark.parametrize(("price", "shown"), [("0.025", "0.02"), ("0.015", "0.02"), ("0.005", "0.00")])
def test_presentation_rounding_is_half_even(price: str, shown: str) -> None:
    # 1 GPU for 1 h at a price of exactly half a cent past a cent: half-even rounds to the even cent
    # (half-up would show 0.03, 0.02 and 0.01).
    job = interval(gpus=1, end=1)
    book = PriceBook.model_validate({"gpuHour": price})
    (row,) = aggregate(allocate([job], book, Window(at(0), at(1)), at(1)), "job")
    assert row.total_cost == D(price)
    assert row.record()["total_cost"] == shown
