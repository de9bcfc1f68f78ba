"""The first-version gateway: routing by path, round robin, retry only on connect failure, 404 and 503."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import orjson
import pytest
import uvicorn

from pilothouse.serving.gateway.proxy import Gateway
from pilothouse.serving.gateway.routes import RouteTable
from support import free_port, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def echo_app(name: str):  # type: ignore[no-untyped-def]
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        payload = orjson.dumps(
            {
                "replica": name,
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode(),
                "body": body.decode(),
                "trace": dict(scope["headers"]).get(b"x-trace", b"").decode(),
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"x-replica", name.encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return app


class Upstream:
    def __init__(self, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(echo_app(name), port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, what=f"upstream {name}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def upstreams() -> Iterator[list[Upstream]]:
    servers = [Upstream("a"), Upstream("b")]
    yield servers
    for server in servers:
        server.stop()


def test_route_table_round_robin_and_exclusion() -> None:
    routes = RouteTable()
    assert routes.pick("ns", "m") is None
    routes.publish("ns", "m", ["u1", "u2", "u3"])
    picks = [routes.pick("ns", "m") for _ in range(6)]
    assert picks == ["u1", "u2", "u3", "u1", "u2", "u3"]
    assert {routes.pick("ns", "m", frozenset({"u1"})) for _ in range(4)} == {"u2", "u3"}
    assert routes.pick("ns", "m", frozenset({"u1", "u2", "u3"})) is None
    routes.publish("ns", "m", [])
    assert routes.known("ns", "m") and routes.pick("ns", "m") is None
    routes.withdraw("ns", "m")
    assert not routes.known("ns", "m")


async def test_forwards_path_query_body_headers_round_robin(upstreams: list[Upstream]) -> None:
    routes = RouteTable()
    routes.publish("team", "iris", [u.url for u in upstreams])
    gateway = Gateway(routes)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        seen = []
        for _ in range(4):
            response = await client.post(
                "/team/iris/v2/models/iris/infer?x=1", content=b'{"inputs":[]}', headers={"x-trace": "t-1"}
            )
            assert response.status_code == 200
            data = response.json()
            assert (data["method"], data["path"], data["query"]) == ("POST", "/v2/models/iris/infer", "x=1")
            assert data["body"] == '{"inputs":[]}' and data["trace"] == "t-1"
            assert response.headers["x-replica"] == data["replica"]
            seen.append(data["replica"])
        assert sorted(seen) == ["a", "a", "b", "b"]
    await gateway.aclose()


async def test_unknown_endpoint_404_and_no_ready_replica_503(upstreams: list[Upstream]) -> None:
    routes = RouteTable()
    routes.publish("team", "cold", [])
    gateway = Gateway(routes)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        missing = await client.get("/team/ghost/v2/health/ready")
        assert missing.status_code == 404 and "team/ghost" in missing.json()["error"]
        assert (await client.get("/")).status_code == 404
        cold = await client.get("/team/cold/v2/health/ready")
        assert cold.status_code == 503
        assert cold.headers["retry-after"] == "1"
        assert (await client.get("/healthz")).text == "ok"
    await gateway.aclose()


async def test_connect_failure_is_retried_on_another_replica(upstreams: list[Upstream]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    routes = RouteTable()
    routes.publish("team", "iris", [dead, upstreams[0].url])
    gateway = Gateway(routes)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        for _ in range(4):
            response = await client.get("/team/iris/v2/health/ready")
            assert response.status_code == 200 and response.json()["replica"] == "a"
        routes.publish("team", "iris", [dead])
        response = await client.get("/team/iris/v2/health/ready")
        assert response.status_code == 503 and "reachable" in response.json()["error"]
    await gateway.aclose()
