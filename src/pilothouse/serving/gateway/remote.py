"""``RemoteRoutes``: the ``RoutePublisher`` for a gateway in its own process, over its admin API.

Blocking calls (the controllers run in threads) on one keep-alive ``http.client`` connection, plus
an optional daemon thread long-polling ``GET /demand`` to deliver ``on_demand`` callbacks. It keeps
the last route published per endpoint; when the gateway's ``instance`` id changes (it restarted with
an empty table) the whole set is pushed again with ``PUT /routes``.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from pilothouse.serving.gateway.routes import OnDemand
from pilothouse.serving.gateway.spec import EndpointRoute, RevisionStats, Sample

log = logging.getLogger(__name__)


class RemoteRoutes:
    def __init__(self, admin_url: str, *, timeout: float = 5.0) -> None:
        parts = urlsplit(admin_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], EndpointRoute] = {}
        self._instance: str | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()

    # -- transport --------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> dict[str, Any]:
        payload = orjson.dumps(body) if body is not None else None
        with self._lock:
            for attempt in (1, 2):  # a kept-alive connection the gateway closed: reconnect once
                conn = self._conn or http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
                self._conn = conn
                try:
                    conn.timeout = timeout or self._timeout
                    if conn.sock is not None:
                        conn.sock.settimeout(conn.timeout)
                    conn.request(method, path, body=payload, headers={"content-type": "application/json"})
                    response = conn.getresponse()
                    data: dict[str, Any] = orjson.loads(response.read())
                except (ConnectionError, http.client.HTTPException):
                    conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise
                    continue
                if response.status >= 400:
                    raise RuntimeError(
                        f"gateway admin {method} {path}: {response.status} {data.get('error')}"
                    )
                break
            restarted = self._instance is not None and data.get("instance") != self._instance
            self._instance = data.get("instance")
        if restarted and path != "/routes":
            log.warning("gateway restarted (instance %s): pushing all routes again", self._instance)
            self.resync()
        return data

    def resync(self) -> None:
        table = [{"namespace": ns, "name": n, "route": r.to_json()} for (ns, n), r in self._routes.items()]
        self._call("PUT", "/routes", {"routes": table})

    # -- RoutePublisher ------------------------------------------------------------------------------------
    def publish(self, namespace: str, name: str, route: EndpointRoute | Sequence[str]) -> None:
        if not isinstance(route, EndpointRoute):
            route = EndpointRoute.single(list(route))
        self._routes[(namespace, name)] = route
        self._call("PUT", f"/routes/{quote(namespace)}/{quote(name)}", route.to_json())

    def withdraw(self, namespace: str, name: str) -> None:
        self._routes.pop((namespace, name), None)
        self._call("DELETE", f"/routes/{quote(namespace)}/{quote(name)}")

    def inflight(self, url: str) -> int:
        return int(self._call("POST", "/drained", {"urls": [url]})["inflight"][url])

    def drained(self, urls: Iterable[str]) -> bool:
        return bool(self._call("POST", "/drained", {"urls": list(urls)})["drained"])

    def samples(self, namespace: str, name: str, seconds: float) -> list[Sample]:
        data = self._call("GET", f"/samples/{quote(namespace)}/{quote(name)}?seconds={seconds}")
        return [Sample(t, c, int(r)) for t, c, r in data["samples"]]

    def revision_stats(self, namespace: str, name: str, revision: int, seconds: float) -> RevisionStats:
        data = self._call("GET", f"/stats/{quote(namespace)}/{quote(name)}/{revision}?seconds={seconds}")
        return RevisionStats(int(data["requests"]), int(data["errors"]), data["p99Seconds"])

    def on_demand(self, callback: OnDemand | None) -> None:
        """Deliver demand events to ``callback`` from a daemon thread (long poll); ``None`` stops it."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=1.0)
        if callback is None:
            return
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, args=(callback, self._stop), daemon=True)
        self._poller.start()

    def _poll(self, callback: OnDemand, stop: threading.Event) -> None:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=35.0)
        seq: int | None = None
        instance = None
        while not stop.is_set():
            try:
                conn.request("GET", f"/demand?after={seq or 0}&wait={0 if seq is None else 10}")
                data = orjson.loads(conn.getresponse().read())
            except (OSError, http.client.HTTPException):
                conn.close()
                stop.wait(0.5)
                continue
            if data["instance"] != instance:  # first call, or a restarted gateway: start from its present
                instance, seq = data["instance"], data["seq"]
                continue
            for event in data["events"]:
                with contextlib.suppress(Exception):
                    callback(event["namespace"], event["name"])
            seq = data["seq"]
        conn.close()

    def close(self) -> None:
        self.on_demand(None)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
