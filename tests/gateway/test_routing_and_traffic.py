"""Route-table logic without HTTP: smooth WRR, least-outstanding ties, route values, and the traffic
windows (per-second samples, revision stats) under an injected clock."""

from __future__ import annotations

from collections import Counter

import pytest

from pilothouse.controllers.routes import RoutePublisher, wait_drained
from pilothouse.serving.gateway.remote import RemoteRoutes
from pilothouse.serving.gateway.routes import RouteTable
from pilothouse.serving.gateway.spec import EndpointRoute, Replica, RevisionRoute, Sample

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def route(*revisions: tuple[int, int, int]) -> EndpointRoute:
    """(revision, weight, replica count) -> a route with made-up replica URLs."""
    return EndpointRoute(
        tuple(
            RevisionRoute(rev, weight, tuple(Replica(f"http://10.0.{rev}.{i}:9000") for i in range(n)))
            for rev, weight, n in revisions
        )
    )


async def picks(table: RouteTable, n: int, *, release: bool = True) -> list[str]:
    endpoint = table.by_prefix(b"/ns/m")
    assert endpoint is not None
    out = []
    for _ in range(n):
        upstream = await endpoint.acquire()
        out.append(upstream.meter.label)
        if release:
            endpoint.release(upstream, 200, 0.001)
    return out


async def test_smooth_wrr_is_exact_and_interleaved_over_each_cycle() -> None:
    table = RouteTable()
    table.publish("ns", "m", route((1, 90, 1), (2, 10, 1)))
    sequence = await picks(table, 300)
    for cycle in range(3):
        assert Counter(sequence[cycle * 100 : (cycle + 1) * 100]) == {"1": 90, "2": 10}
    for start in range(0, 300, 10):  # smooth: every 10 consecutive picks hold exactly one "2"
        assert sequence[start : start + 10].count("2") == 1
    table.publish("ns", "m", route((1, 50, 2), (2, 30, 1), (3, 20, 3)))
    assert Counter(await picks(table, 100)) == {"1": 50, "2": 30, "3": 20}


async def test_revision_without_ready_replica_shares_go_to_the_others_proportionally() -> None:
    table = RouteTable()
    table.publish("ns", "m", route((1, 60, 1), (2, 20, 1), (3, 20, 0)))
    assert Counter(await picks(table, 80)) == {"1": 60, "2": 20}


async def test_least_outstanding_ties_are_round_robin_and_limits_respected() -> None:
    table = RouteTable()
    urls = [f"http://10.0.0.{i}:9000" for i in range(3)]
    table.publish("ns", "m", EndpointRoute.single(urls, concurrency=1))
    endpoint = table.by_prefix(b"/ns/m")
    assert endpoint is not None
    held = [await endpoint.acquire() for _ in range(3)]
    assert sorted(u.url for u in held) == urls  # each replica's single slot, one each
    assert [table.inflight(u) for u in urls] == [1, 1, 1]
    for u in held:
        endpoint.release(u, 200, 0.001)
    seen = []
    for _ in range(6):  # all idle: ties rotate
        u = await endpoint.acquire()
        seen.append(u.url)
        endpoint.release(u, 200, 0.001)
    assert Counter(seen) == dict.fromkeys(urls, 2)
    assert table.drained(urls)


def test_route_values_validate_and_round_trip_json() -> None:
    with pytest.raises(ValueError, match="sum to 100"):
        route((1, 50, 1), (2, 40, 1))
    with pytest.raises(ValueError, match="http://"):
        Replica("10.0.0.1:9000")
    original = EndpointRoute(
        (RevisionRoute(3, 90, (Replica("http://a:1", 4),)), RevisionRoute(4, 10, ())),
        hold=True,
        queue_size=7,
        queue_timeout=2.5,
    )
    assert EndpointRoute.from_json(original.to_json()) == original
    assert EndpointRoute.single(["http://a:1"]).urls == {"http://a:1"}


def test_route_table_and_remote_routes_satisfy_the_publisher_protocol() -> None:
    publishers: list[RoutePublisher] = [RouteTable(), RemoteRoutes("http://127.0.0.1:1")]
    assert all(callable(p.publish) and callable(p.drained) for p in publishers)
    table = RouteTable()
    assert wait_drained(table, ["http://nowhere:1"], timeout=0.1)


async def test_samples_are_time_weighted_per_second() -> None:
    clock = Clock(1000.0)
    table = RouteTable(clock=clock)
    table.publish("ns", "m", route((1, 100, 2)))
    endpoint = table.by_prefix(b"/ns/m")
    assert endpoint is not None
    first = await endpoint.acquire()  # t=1000.0: level 1
    clock.t = 1000.5
    second = await endpoint.acquire()  # t=1000.5: level 2
    clock.t = 1001.0
    endpoint.release(first, 200, 1.0)
    clock.t = 1001.25
    endpoint.release(second, 500, 0.75)
    clock.t = 1003.2
    assert table.samples("ns", "m", 10) == [
        Sample(1000.0, 1.5, 0),  # 1 for 0.5 s + 2 for 0.5 s
        Sample(1001.0, 0.25, 2),  # 1 for 0.25 s, two completions
        Sample(1002.0, 0.0, 0),
    ]
    assert table.samples("ns", "m", 1) == [Sample(1002.0, 0.0, 0)]
    assert table.samples("ns", "other", 5) == []


async def test_samples_count_queued_requests_and_cover_idle_gaps() -> None:
    clock = Clock(50.0)
    table = RouteTable(clock=clock)
    table.publish("ns", "m", EndpointRoute(hold=True, queue_timeout=100))
    endpoint = table.by_prefix(b"/ns/m")
    assert endpoint is not None
    import asyncio

    held = asyncio.ensure_future(endpoint.acquire())
    await asyncio.sleep(0)
    assert endpoint.meter.queued == 1
    clock.t = 53.0  # three whole seconds with one request held
    table.publish("ns", "m", route((1, 100, 1)))  # wakes it: queued -> in flight, level stays 1
    upstream = await held
    clock.t = 53.5
    endpoint.release(upstream, 200, 3.5)
    clock.t = 300.0  # a long idle gap: the ring keeps only its window, filled with zeros
    samples = table.samples("ns", "m", 300)
    assert samples[:4] == [
        Sample(50.0, 1.0, 0),
        Sample(51.0, 1.0, 0),
        Sample(52.0, 1.0, 0),
        Sample(53.0, 0.5, 1),
    ]
    assert len(samples) == 250 and samples[-1] == Sample(299.0, 0.0, 0)


async def test_revision_stats_over_a_window() -> None:
    clock = Clock(2000.0)
    table = RouteTable(clock=clock)
    table.publish("ns", "m", route((1, 50, 1), (2, 50, 1)))
    endpoint = table.by_prefix(b"/ns/m")
    assert endpoint is not None
    latencies = {"1": [0.002] * 99 + [0.5], "2": [0.01] * 50}
    for t in range(100):
        clock.t = 2000.0 + t * 0.5  # 50 s of traffic
        upstream = await endpoint.acquire()
        label = upstream.meter.label
        endpoint.release(upstream, 500 if label == "2" and t % 10 == 1 else 200, latencies[label].pop())
    clock.t = 2050.0
    one = table.revision_stats("ns", "m", 1, 120)
    two = table.revision_stats("ns", "m", 2, 120)
    assert (one.requests, one.errors) == (50, 0) and (two.requests, two.errors) == (50, 10)
    assert two.error_rate == 0.2
    assert one.p99_seconds is not None and 0.5 <= one.p99_seconds < 0.55  # the one 500 ms outlier
    assert two.p99_seconds is not None and 0.01 <= two.p99_seconds < 0.011
    recent = table.revision_stats("ns", "m", 2, 10)  # only t in [2041, 2050]
    assert recent.requests == 9
    assert table.revision_stats("ns", "m", 9, 60).p99_seconds is None
