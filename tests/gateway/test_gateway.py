"""The gateway over real HTTP on 127.0.0.1: routing, splits, holding, limits, retries, drain, metrics."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pilothouse.serving.gateway.proxy import Gateway
from pilothouse.serving.gateway.routes import RouteTable
from pilothouse.serving.gateway.spec import EndpointRoute, Replica, RevisionRoute
from support import free_port

pytestmark = pytest.mark.anyio


def split(*revisions: tuple[int, int, list[str]], concurrency: int | None = None, **kw: Any) -> EndpointRoute:
    return EndpointRoute(
        tuple(
            RevisionRoute(rev, w, tuple(Replica(u, concurrency) for u in urls)) for rev, w, urls in revisions
        ),
        **kw,
    )


async def gather_status(client: httpx.AsyncClient, paths: list[str], concurrency: int = 8) -> list[Any]:
    """GET every path with ``concurrency`` workers; returns the responses in order."""
    results: list[Any] = [None] * len(paths)
    index = iter(range(len(paths)))

    async def worker() -> None:
        for i in index:
            results[i] = await client.get(paths[i])

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return results


# -- forwarding ---------------------------------------------------------------------------------------


async def test_forwards_path_query_body_headers(served, replicas) -> None:
    gw = await served()
    gw.routes.publish("team", "iris", EndpointRoute.single([r.url for r in replicas]))
    seen = []
    for _ in range(4):
        response = await gw.client.post(
            "/team/iris/v2/models/iris/infer?x=1", content=b'{"inputs":[]}', headers={"x-trace": "t-1"}
        )
        assert response.status_code == 200
        data = response.json()
        assert (data["method"], data["path"], data["query"]) == ("POST", "/v2/models/iris/infer", "x=1")
        assert data["body"] == '{"inputs":[]}' and data["trace"] == "t-1"
        assert response.headers["x-replica"] == data["replica"]
        seen.append(data["replica"])
    assert sorted(seen) == ["a", "a", "b", "b"]  # idle replicas tie: round robin


async def test_asgi_front_still_works(replicas) -> None:
    routes = RouteTable()
    routes.publish("team", "iris", [replicas[0].url])  # the legacy list form is still accepted
    gateway = Gateway(routes)
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.post("/team/iris/v2/x?y=2", content=b"hi")
        assert response.status_code == 200 and response.json()["query"] == "y=2"
        assert (await client.get("/healthz")).text == "ok"
        assert (await client.get("/team/ghost/v2")).status_code == 404
    await gateway.aclose()


async def test_unknown_endpoint_404_and_no_ready_replica_503(served) -> None:
    gw = await served()
    gw.routes.publish("team", "cold", EndpointRoute())
    missing = await gw.client.get("/team/ghost/v2/health/ready")
    assert missing.status_code == 404 and "team/ghost" in missing.json()["error"]
    assert (await gw.client.get("/")).status_code == 404
    cold = await gw.client.get("/team/cold/v2/health/ready")
    assert cold.status_code == 503 and cold.headers["retry-after"] == "1"
    assert (await gw.client.get("/healthz")).text == "ok"
    gw.routes.withdraw("team", "cold")
    assert (await gw.client.get("/team/cold/v2/health/ready")).status_code == 404


# -- traffic split and balancing ---------------------------------------------------------------------


async def test_weighted_split_90_10_over_1000_requests(served, replicas) -> None:
    gw = await served()
    gw.routes.publish("team", "iris", split((1, 90, [replicas[0].url]), (2, 10, [replicas[1].url])))
    responses = await gather_status(gw.client, ["/team/iris/x"] * 1000, concurrency=8)
    counts = Counter(r.json()["replica"] for r in responses)
    assert counts == {"a": 900, "b": 100}  # smooth WRR is exact over whole cycles, whatever the concurrency


async def test_weighted_revision_without_replicas_gives_its_share_away(served, replicas) -> None:
    gw = await served()
    gw.routes.publish("team", "iris", split((1, 50, [replicas[0].url]), (2, 50, [])))
    responses = await gather_status(gw.client, ["/team/iris/x"] * 20)
    assert {r.json()["replica"] for r in responses} == {"a"}
    # no weighted revision is ready: the weight-0 revision (traffic already moved off it) still serves
    gw.routes.publish("team", "iris", split((1, 0, [replicas[1].url]), (2, 100, [])))
    assert (await gw.client.get("/team/iris/x")).json()["replica"] == "b"


async def test_least_outstanding_requests(served, make_replica, until) -> None:
    gw = await served()
    busy, idle = make_replica("busy"), make_replica("idle")
    gw.routes.publish("team", "iris", EndpointRoute.single([busy.url]))
    blocked = asyncio.ensure_future(gw.client.get("/team/iris/block"))
    await until(lambda: busy.inflight == 1)
    gw.routes.publish("team", "iris", EndpointRoute.single([busy.url, idle.url]))
    responses = await gather_status(gw.client, ["/team/iris/x"] * 20, concurrency=1)
    assert Counter(r.json()["replica"] for r in responses) == {"idle": 20}  # 1 outstanding vs 0
    busy.release()
    assert (await blocked).status_code == 200


async def test_slow_replica_gets_fewer_requests(served, make_replica) -> None:
    gw = await served()
    slow, fast = make_replica("slow"), make_replica("fast")
    slow.delay = 0.05
    gw.routes.publish("team", "iris", EndpointRoute.single([slow.url, fast.url]))
    responses = await gather_status(gw.client, ["/team/iris/x"] * 60, concurrency=4)
    counts = Counter(r.json()["replica"] for r in responses)
    assert counts["slow"] + counts["fast"] == 60 and counts["slow"] < counts["fast"] / 3, counts


# -- hold (scale from zero) ------------------------------------------------------------------------------


async def test_hold_then_release_when_a_replica_is_published(served, replicas, until) -> None:
    demanded: list[tuple[str, str]] = []
    gw = await served(on_demand=lambda ns, name: demanded.append((ns, name)))
    gw.routes.publish("team", "iris", EndpointRoute(hold=True))
    tasks = [asyncio.ensure_future(gw.client.get(f"/team/iris/x?i={i}")) for i in range(5)]
    endpoint = gw.routes.by_prefix(b"/team/iris")
    assert endpoint is not None
    await until(lambda: endpoint.meter.queued == 5, what="5 requests held")
    assert demanded == [("team", "iris")]  # once, when holding started
    assert not any(t.done() for t in tasks)
    # the controller publishes from its own thread: the hop onto the loop wakes the held requests
    route = EndpointRoute.single([replicas[0].url], hold=True)
    await anyio.to_thread.run_sync(gw.routes.publish, "team", "iris", route)
    responses = await asyncio.gather(*tasks)
    assert [r.status_code for r in responses] == [200] * 5
    assert [r.json()["query"] for r in responses] == [f"i={i}" for i in range(5)]  # FIFO
    assert endpoint.meter.queued == 0 and demanded == [("team", "iris")]


async def test_hold_queue_full_answers_503_with_retry_after(served, until) -> None:
    gw = await served()
    gw.routes.publish("team", "iris", EndpointRoute(hold=True, queue_size=2, queue_timeout=5))
    held = [asyncio.ensure_future(gw.client.get("/team/iris/x")) for _ in range(2)]
    endpoint = gw.routes.by_prefix(b"/team/iris")
    await until(lambda: endpoint.meter.queued == 2)
    rejected = await gw.client.get("/team/iris/x")
    assert rejected.status_code == 503 and rejected.headers["retry-after"] == "1"
    assert "queue full" in rejected.json()["error"]
    gw.routes.publish("team", "iris", EndpointRoute(hold=False))  # nothing will come: fail the held ones
    assert [r.status_code for r in await asyncio.gather(*held)] == [503, 503]


async def test_hold_timeout_answers_504(served) -> None:
    gw = await served()
    gw.routes.publish("team", "iris", EndpointRoute(hold=True, queue_timeout=0.2))
    with anyio.fail_after(5):
        response = await gw.client.get("/team/iris/x")
    assert response.status_code == 504 and "within 0.2 s" in response.json()["error"]
    assert gw.routes.by_prefix(b"/team/iris").meter.queued == 0


# -- overload protection -------------------------------------------------------------------------------


async def test_concurrency_limit_is_never_exceeded_at_the_replica(served, replicas) -> None:
    gw = await served()
    gw.routes.publish("team", "iris", EndpointRoute.single([r.url for r in replicas], concurrency=2))
    responses = await gather_status(gw.client, ["/team/iris/x?sleep=0.02"] * 40, concurrency=12)
    assert [r.status_code for r in responses] == [200] * 40
    assert all(r.max_inflight <= 2 for r in replicas), [r.max_inflight for r in replicas]
    assert all(r.max_inflight == 2 for r in replicas)  # and the limit is used, not undershot


async def test_full_replicas_and_full_queue_answer_503(served, replicas, until) -> None:
    gw = await served()
    replica = replicas[0]
    gw.routes.publish("team", "iris", EndpointRoute.single([replica.url], concurrency=1, queue_size=1))
    first = asyncio.ensure_future(gw.client.get("/team/iris/block"))
    await until(lambda: replica.inflight == 1)
    second = asyncio.ensure_future(gw.client.get("/team/iris/x"))
    endpoint = gw.routes.by_prefix(b"/team/iris")
    await until(lambda: endpoint.meter.queued == 1)
    third = await gw.client.get("/team/iris/x")
    assert third.status_code == 503 and third.headers["retry-after"] == "1"
    replica.release()
    assert (await first).status_code == 200 and (await second).status_code == 200
    assert replica.max_inflight == 1


# -- retries ------------------------------------------------------------------------------------------


async def test_connect_failure_is_retried_on_another_replica(served, replicas) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    gw = await served()
    gw.routes.publish("team", "iris", EndpointRoute.single([dead, replicas[0].url]))
    for _ in range(4):
        response = await gw.client.get("/team/iris/v2/health/ready")
        assert response.status_code == 200 and response.json()["replica"] == "a"
    gw.routes.publish("team", "iris", EndpointRoute.single([dead]))
    response = await gw.client.get("/team/iris/v2/health/ready")
    assert response.status_code == 503 and "reachable" in response.json()["error"]


async def test_no_retry_after_a_500(served, replicas) -> None:
    gw = await served()
    gw.routes.publish("team", "iris", EndpointRoute.single([r.url for r in replicas]))
    response = await gw.client.post("/team/iris/status/500", content=b"x")
    assert response.status_code == 500
    assert sum(r.hits for r in replicas) == 1


async def test_no_retry_after_a_read_timeout(served, replicas) -> None:
    gw = await served(timeout=0.2)
    gw.routes.publish("team", "iris", EndpointRoute.single([r.url for r in replicas]))
    response = await gw.client.get("/team/iris/x?sleep=1")
    assert response.status_code == 504
    assert sum(r.hits for r in replicas) == 1


# -- graceful drain ------------------------------------------------------------------------------------


async def test_removed_replica_drains_its_in_flight_request(served, replicas, until) -> None:
    gw = await served()
    old, new = replicas
    gw.routes.publish("team", "iris", EndpointRoute.single([old.url]))
    slow = asyncio.ensure_future(gw.client.get("/team/iris/block"))
    await until(lambda: old.inflight == 1)
    assert gw.routes.inflight(old.url) == 1
    await anyio.to_thread.run_sync(gw.routes.publish, "team", "iris", EndpointRoute.single([new.url]))
    assert not gw.routes.drained([old.url])
    responses = await gather_status(gw.client, ["/team/iris/x"] * 10)
    assert {r.json()["replica"] for r in responses} == {"b"}  # new requests go elsewhere
    old.release()
    response = await slow
    assert response.status_code == 200 and response.json()["replica"] == "a"  # completed, not aborted
    assert gw.routes.inflight(old.url) == 0 and gw.routes.drained([old.url, new.url])


# -- measurements ------------------------------------------------------------------------------------


async def test_metrics_parse_and_follow_conventions(served, replicas, until) -> None:
    gw = await served()
    gw.routes.publish("team", "iris", split((1, 50, [replicas[0].url]), (2, 50, [replicas[1].url])))
    gw.routes.publish("team", "cold", EndpointRoute())
    for _ in range(4):
        assert (await gw.client.get("/team/iris/x")).status_code == 200
    assert (await gw.client.get("/team/iris/status/500")).status_code == 500
    assert (await gw.client.get("/team/cold/x")).status_code == 503
    text = (await gw.client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {
        "pilothouse_gateway_requests",
        "pilothouse_gateway_request_duration_seconds",
        "pilothouse_gateway_in_flight_requests",
        "pilothouse_gateway_queued_requests",
        "pilothouse_gateway_errors",
    } <= set(families)
    assert families["pilothouse_gateway_requests"].type == "counter"
    assert families["pilothouse_gateway_request_duration_seconds"].type == "histogram"
    requests = {
        (s.labels["endpoint"], s.labels["revision"], s.labels["code"]): s.value
        for s in families["pilothouse_gateway_requests"].samples
        if s.name == "pilothouse_gateway_requests_total"
    }
    assert requests.get(("iris", "1", "2xx"), 0) + requests.get(("iris", "2", "2xx"), 0) == 4
    assert requests.get(("iris", "1", "5xx"), 0) + requests.get(("iris", "2", "5xx"), 0) == 1
    assert requests[("cold", "none", "5xx")] == 1
    counts = [
        s.value
        for s in families["pilothouse_gateway_request_duration_seconds"].samples
        if s.name.endswith("_count") and s.labels["endpoint"] == "iris"
    ]
    assert sum(counts) == 5
    errors = {
        (s.labels["endpoint"], s.labels["reason"]): s.value
        for s in families["pilothouse_gateway_errors"].samples
        if s.name == "pilothouse_gateway_errors_total"
    }
    assert errors[("cold", "no_replica")] == 1 and errors[("iris", "connect")] == 0
    in_flight = [s.value for s in families["pilothouse_gateway_in_flight_requests"].samples]
    assert in_flight and all(v == 0 for v in in_flight)
    for family in families.values():
        assert family.name.startswith("pilothouse_gateway_")
        for sample in family.samples:
            assert set(sample.labels) <= {"namespace", "endpoint", "revision", "code", "reason", "le"}


async def test_revision_stats_and_samples_through_http(served, replicas) -> None:
    gw = await served()
    gw.routes.publish("team", "iris", split((7, 100, [replicas[0].url])))
    for _ in range(9):
        await gw.client.get("/team/iris/x")
    await gw.client.get("/team/iris/status/503")
    stats = await anyio.to_thread.run_sync(gw.routes.revision_stats, "team", "iris", 7, 60)
    assert (stats.requests, stats.errors) == (10, 1)
    assert stats.p99_seconds is not None and 0 < stats.p99_seconds < 5
    assert gw.routes.revision_stats("team", "iris", 8, 60).requests == 0


# -- own process --------------------------------------------------------------------------------------


async def test_own_process_with_routes_pushed_over_the_admin_api(replicas, tmp_path) -> None:
    import subprocess
    import sys

    from pilothouse.serving.gateway.remote import RemoteRoutes

    port, admin_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pilothouse.serving.gateway",
            "--port",
            str(port),
            "--admin-port",
            str(admin_port),
        ]
    )
    remote = RemoteRoutes(f"http://127.0.0.1:{admin_port}")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            with anyio.fail_after(20):
                while True:
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await anyio.sleep(0.02)
            demanded = threading.Event()
            remote.on_demand(lambda ns, name: demanded.set())
            await anyio.to_thread.run_sync(remote.publish, "team", "iris", EndpointRoute(hold=True))
            await anyio.sleep(0.2)  # let the long poll establish its starting point
            held = asyncio.ensure_future(client.get("/team/iris/x"))
            assert await anyio.to_thread.run_sync(demanded.wait, 10)
            route = EndpointRoute.single([replicas[0].url], hold=True)
            await anyio.to_thread.run_sync(remote.publish, "team", "iris", route)
            assert (await held).status_code == 200
            assert await anyio.to_thread.run_sync(remote.drained, [replicas[0].url])
            stats = await anyio.to_thread.run_sync(remote.revision_stats, "team", "iris", 1, 60)
            assert stats.requests == 1
            await anyio.to_thread.run_sync(remote.withdraw, "team", "iris")
            assert (await client.get("/team/iris/x")).status_code == 404
    finally:
        remote.close()
        proc.terminate()
        proc.wait(10)


# -- the native server's HTTP handling ---------------------------------------------------------------


async def test_native_server_pipelining_http10_expect_and_bad_requests(served, replicas) -> None:
    gw = await served()
    gw.routes.publish("team", "iris", EndpointRoute.single([replicas[0].url]))
    port = int(str(gw.client.base_url).rsplit(":", 1)[1])

    async def exchange(raw: bytes, until_closed: bool = True, expect: int = 1) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        data = b""
        with anyio.fail_after(5):
            while data.count(b"HTTP/1.1 ") < expect or (until_closed and not reader.at_eof()):
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
        writer.close()
        return data

    two = b"GET /team/iris/one HTTP/1.1\r\nhost: x\r\n\r\nGET /team/iris/two HTTP/1.1\r\nhost: x\r\n\r\n"
    data = await exchange(two, until_closed=False, expect=2)
    assert data.index(b'"path":"/one"') < data.index(b'"path":"/two"')  # answered in order
    data = await exchange(b"GET /team/iris/old HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in data
    body = b'{"inputs":[]}'
    post = (
        b"POST /team/iris/p HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: %d\r\n\r\n"
        % len(body)
    )
    data = await exchange(post + body, until_closed=False, expect=2)
    assert (
        data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
        and b'"body":"{\\"inputs\\":[]}"' in data
    )
    data = await exchange(b"NOT HTTP AT ALL\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400")
