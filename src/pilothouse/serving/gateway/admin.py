"""The admin API of a gateway running in its own process: how the control plane pushes routes to it.

Served on a separate listener (``--admin-port``, loopback by default: it changes routing, so it must
not be reachable from where inference traffic comes from). JSON in and out; every answer carries
``instance``, a random id of this gateway process, so a publisher notices a restarted gateway (empty
table) and pushes its whole route set again (:class:`pilothouse.serving.gateway.remote.RemoteRoutes`).

====================================  =========================================================
``PUT /routes``                        replace the whole table: ``{"routes": [{namespace, name, route}]}``
``PUT /routes/{ns}/{name}``            publish one endpoint's route (``EndpointRoute.to_json()``)
``DELETE /routes/{ns}/{name}``         withdraw it
``GET /routes``                        the table as published
``POST /drained``                      ``{"urls": [...]}`` -> ``{"drained": bool, "inflight": {url: n}}``
``GET /demand?after=SEQ&wait=S``       long poll: demand events with ``seq > SEQ``, waiting up to S s
``GET /samples/{ns}/{name}?seconds=N``  per-second samples ``[[t, concurrency, rps], ...]``
``GET /stats/{ns}/{name}/{rev}?seconds=N``  ``{"requests", "errors", "p99Seconds"}``
====================================  =========================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from typing import Any
from urllib.parse import parse_qs

import orjson

from pilothouse.serving.gateway.proxy import JSON, Response, error
from pilothouse.serving.gateway.routes import RouteTable
from pilothouse.serving.gateway.spec import EndpointRoute
from pilothouse.serving.gateway.upstream import Headers

MAX_DEMAND_EVENTS = 1024
MAX_WAIT_S = 30.0


class AdminApi:
    def __init__(self, routes: RouteTable) -> None:
        self.routes = routes
        self.instance = secrets.token_hex(8)
        self.seq = 0
        self.events: deque[tuple[int, str, str]] = deque(maxlen=MAX_DEMAND_EVENTS)
        self._changed: asyncio.Event | None = None
        routes.on_demand(self._demand)

    def _demand(self, namespace: str, name: str) -> None:  # called on the loop
        self.seq += 1
        self.events.append((self.seq, namespace, name))
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _ok(self, payload: dict[str, Any]) -> Response:
        return 200, [JSON], orjson.dumps({"instance": self.instance, **payload})

    async def handle(
        self, method: bytes, path: bytes, query: bytes, headers: Headers, body: bytes
    ) -> Response:
        parts = path.decode("latin-1").strip("/").split("/")
        params = {k: v[-1] for k, v in parse_qs(query.decode("latin-1")).items()}
        try:
            return await self._route(method, parts, params, body)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            return error(400, f"bad request: {exc}")

    async def _route(self, method: bytes, parts: list[str], params: dict[str, str], body: bytes) -> Response:
        routes = self.routes
        match method, parts:
            case b"GET", ["healthz"]:
                return self._ok({})
            case b"GET", ["routes"]:
                table = [
                    {"namespace": ns, "name": n, "route": r.to_json()}
                    for (ns, n), r in routes.routes().items()
                ]
                return self._ok({"routes": table})
            case b"PUT", ["routes"]:
                wanted = {
                    (e["namespace"], e["name"]): EndpointRoute.from_json(e["route"])
                    for e in orjson.loads(body)["routes"]
                }
                for key in set(routes.routes()) - set(wanted):
                    routes.withdraw(*key)
                for (ns, n), route in wanted.items():
                    routes.publish(ns, n, route)
                return self._ok({"routes": len(wanted)})
            case b"PUT", ["routes", ns, n]:
                routes.publish(ns, n, EndpointRoute.from_json(orjson.loads(body)))
                return self._ok({})
            case b"DELETE", ["routes", ns, n]:
                routes.withdraw(ns, n)
                return self._ok({})
            case b"POST", ["drained"]:
                urls = [str(u) for u in orjson.loads(body)["urls"]]
                inflight = {u: routes.inflight(u) for u in urls}
                return self._ok({"drained": not any(inflight.values()), "inflight": inflight})
            case b"GET", ["demand"]:
                after = int(params.get("after", "0"))
                wait = min(float(params.get("wait", "0")), MAX_WAIT_S)
                if self.seq <= after and wait > 0:
                    if self._changed is None:
                        self._changed = asyncio.Event()
                    changed = self._changed
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), wait)
                events = [{"seq": s, "namespace": ns, "name": n} for s, ns, n in self.events if s > after]
                return self._ok({"seq": self.seq, "events": events})
            case b"GET", ["samples", ns, n]:
                samples = routes.samples(ns, n, int(params.get("seconds", "60")))
                return self._ok({"samples": [[s.t, s.concurrency, s.rps] for s in samples]})
            case b"GET", ["stats", ns, n, rev]:
                stats = routes.revision_stats(ns, n, int(rev), int(params.get("seconds", "60")))
                return self._ok(
                    {"requests": stats.requests, "errors": stats.errors, "p99Seconds": stats.p99_seconds}
                )
        return error(404, f"no admin route {method.decode()} /{'/'.join(parts)}")
