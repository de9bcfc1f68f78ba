"""The gateway's route table: what the control plane publishes, and the per-request choice of a replica.

**Choosing a replica** (all on the gateway's event loop, no locks):

1. *Revision*: smooth weighted round robin (nginx's algorithm) over the revisions that have a ready
   replica. It is deterministic — over any ``sum(weights)`` consecutive picks each revision gets
   exactly its weight, interleaved (90/10 gives 9 x A then B, spread out) — so splits are exact and
   testable, with no random drift at low traffic. A revision that has weight but no ready replica is
   skipped: its share goes to the others in proportion to their weights. Only when *no* weighted
   revision has a ready replica do revisions with weight 0 (e.g. the old revision of a rollout whose
   traffic already moved) serve, evenly.
2. *Replica*: least outstanding requests within the revision; ties go round robin (the scan starts
   one further each time). Replicas at their concurrency limit are skipped.
3. If the chosen revision has no free slot, the other revisions are tried (under overload the split
   bends rather than queueing while capacity is idle); if none has one the request waits in the
   endpoint's queue.

**The endpoint queue** (one per endpoint, FIFO, ``queue_size`` / ``queue_timeout`` from the route)
holds requests while no replica is ready and the route says ``hold`` (scale-from-zero), and requests
that found every replica at its concurrency limit. A queued request gets its replica handed over as
soon as one is free — on every completion and on every publish, never by polling — and a new request
does not overtake queued ones. The first request held for an endpoint with no ready replica calls the
``on_demand`` callback once (until a route with a ready replica is published again).

**Drain**: a replica missing from a newly published route takes no new request; its in-flight
requests finish normally. ``inflight(url)`` / ``drained(urls)`` tell the controller when it may stop
the process. The protocol is documented in ``pilothouse.controllers.routes``.

**Threads**: controllers publish from their own threads, the gateway serves on its event loop. Every
state change is applied on the loop (a publish from another thread hops onto it and waits, bounded),
so the request path needs no lock; reads of ``inflight`` are plain int reads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from pilothouse.serving.gateway.spec import EndpointRoute, RevisionStats, Sample
from pilothouse.serving.gateway.traffic import EndpointMeter, RevisionMeter
from pilothouse.serving.gateway.upstream import ConnectionPool

log = logging.getLogger(__name__)

T = TypeVar("T")
OnDemand = Callable[[str, str], None]
DEFAULT_WINDOW_S = 300
_HOP_TIMEOUT_S = 5.0


class Rejected(Exception):
    """The gateway answers the request itself: ``status`` with a message, maybe ``Retry-After``."""

    def __init__(self, status: int, message: str, reason: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.retry_after = retry_after


class Upstream:
    """One replica, keyed by URL: its limit, in-flight count, connection pool and revision meter."""

    __slots__ = ("active", "inflight", "limit", "meter", "pool", "url")

    def __init__(self, url: str, limit: int | None, meter: RevisionMeter) -> None:
        self.url = url
        self.limit = limit
        self.meter = meter
        self.inflight = 0
        self.active = True
        self.pool = ConnectionPool(url)


class _Revision:
    __slots__ = ("current", "label", "rr", "upstreams", "weight")

    def __init__(self, label: str, weight: int, upstreams: list[Upstream]) -> None:
        self.label = label
        self.weight = weight
        self.upstreams = upstreams
        self.current = 0
        self.rr = 0

    def pick(self, exclude: frozenset[str]) -> Upstream | None:
        """Least outstanding requests among replicas below their limit; ties round robin."""
        ups = self.upstreams
        n = len(ups)
        start = self.rr
        self.rr = start + 1 if start + 1 < n else 0
        best: Upstream | None = None
        for i in range(n):
            u = ups[(start + i) % n]
            if (u.limit is not None and u.inflight >= u.limit) or (exclude and u.url in exclude):
                continue
            if best is None or u.inflight < best.inflight:
                best = u
                if not u.inflight:
                    break
        return best


class Endpoint:
    """Routing state of one endpoint, kept across publishes (queue, meters, round-robin cursors)."""

    def __init__(self, namespace: str, name: str, table: RouteTable) -> None:
        self.namespace = namespace
        self.name = name
        self.table = table
        self.route = EndpointRoute()
        self.revisions: list[_Revision] = []
        self.total = 0
        self.waiters: deque[asyncio.Future[Upstream]] = deque()
        self.meter = EndpointMeter(namespace, name, table.clock, table.window)
        self.none_meter = self.meter.revision("none")
        self.demand_signalled = False
        self.withdrawn = False

    # -- configuration (on the loop) -----------------------------------------------------------
    def apply(self, route: EndpointRoute) -> None:
        self.route = route
        table = self.table
        with_replicas = [r for r in route.revisions if r.replicas]
        serving = [r for r in with_replicas if r.weight > 0] or with_replicas
        revisions = []
        for rev in serving:
            label = str(rev.revision)
            meter = self.meter.revision(label)
            ups = [table._upstream(rep.url, rep.concurrency, meter) for rep in rev.replicas]
            revisions.append(_Revision(label, rev.weight if rev.weight > 0 else 1, ups))
        self.revisions = revisions
        self.total = sum(r.weight for r in revisions)
        self.meter.prune({str(r.revision) for r in route.revisions} | {"none"})
        if revisions:
            self.demand_signalled = False
        self.dispatch()

    # -- the request path ------------------------------------------------------------------------
    def _pick(self, exclude: frozenset[str]) -> Upstream | None:
        revisions = self.revisions
        if len(revisions) == 1:
            return revisions[0].pick(exclude)
        best = revisions[0]
        for rev in revisions:  # smooth weighted round robin
            rev.current += rev.weight
            if rev.current > best.current:
                best = rev
        best.current -= self.total
        upstream = best.pick(exclude)
        if upstream is None:  # the chosen revision is full: any free slot elsewhere, by SWRR standing
            for rev in sorted(revisions, key=lambda r: -r.current):
                if rev is not best and (upstream := rev.pick(exclude)) is not None:
                    break
        return upstream

    def _candidates(self, exclude: frozenset[str]) -> bool:
        return any(u.url not in exclude for rev in self.revisions for u in rev.upstreams)

    def _take(self, upstream: Upstream, now: float) -> Upstream:
        upstream.inflight += 1
        upstream.meter.in_flight += 1
        self.meter.change(1, now)
        return upstream

    async def acquire(self, exclude: frozenset[str] = frozenset()) -> Upstream:
        """A replica with a free slot, counted in flight; waits in the queue if the route allows it."""
        now = self.table.clock()
        if not self.waiters and self.revisions:
            upstream = self._pick(exclude)
            if upstream is not None:
                return self._take(upstream, now)
        if self.revisions and not self._candidates(exclude):
            raise Rejected(503, f"{self.namespace}/{self.name} has no ready replica reachable", "connect", 1)
        if not self.revisions and not self.route.hold:
            raise Rejected(503, f"{self.namespace}/{self.name} has no ready replica", "no_replica", 1)
        route = self.route
        if len(self.waiters) >= route.queue_size:
            what = "held for a replica" if not self.revisions else "waiting for a free replica"
            message = f"{self.namespace}/{self.name}: queue full ({route.queue_size} {what})"
            raise Rejected(503, message, "queue_full", 1)
        return await self._wait(route.queue_timeout, now)

    async def _wait(self, timeout: float, now: float) -> Upstream:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Upstream] = loop.create_future()
        self.waiters.append(waiter)
        self.meter.queued += 1
        self.meter.change(1, now)
        if not self.revisions and not self.demand_signalled:
            self.demand_signalled = True
            self.table._signal_demand(self.namespace, self.name)
        timer = loop.call_later(timeout, self._expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result(), 0, 0.0)  # handed a slot just as the client went away
            raise
        finally:
            timer.cancel()
            if not waiter.done() or waiter.cancelled():
                self._unqueue(waiter)

    def _unqueue(self, waiter: asyncio.Future[Upstream]) -> None:
        try:
            self.waiters.remove(waiter)
        except ValueError:
            return
        self.meter.queued -= 1
        self.meter.change(-1, self.table.clock())

    def _expire(self, waiter: asyncio.Future[Upstream]) -> None:
        if waiter.done():
            return
        self._unqueue(waiter)
        waiting_for = "a replica" if not self.revisions else "a free replica"
        waiter.set_exception(
            Rejected(
                504,
                f"{self.namespace}/{self.name}: no {waiting_for} within {self.route.queue_timeout:g} s",
                "queue_timeout",
            )
        )

    def dispatch(self) -> None:
        """Hand free slots to queued requests, oldest first; fail them all if nothing will come."""
        waiters = self.waiters
        if not waiters:
            return
        if (not self.revisions and not self.route.hold) or self.withdrawn:
            message = "was withdrawn" if self.withdrawn else "has no ready replica"
            while waiters:
                waiter = waiters.popleft()
                self.meter.queued -= 1
                self.meter.change(-1, self.table.clock())
                if not waiter.done():
                    waiter.set_exception(
                        Rejected(503, f"{self.namespace}/{self.name} {message}", "no_replica", 1)
                    )
            return
        now = self.table.clock()
        while waiters and self.revisions:
            upstream = self._pick(frozenset())
            if upstream is None:
                return
            waiter = waiters.popleft()
            self.meter.queued -= 1
            self.meter.change(-1, now)
            if not waiter.done():
                waiter.set_result(self._take(upstream, now))

    def release(self, upstream: Upstream, status: int, latency: float) -> None:
        """The request on ``upstream`` is over (``status`` 0: it never produced a response)."""
        now = self.table.clock()
        upstream.inflight -= 1
        upstream.meter.in_flight -= 1
        meter = self.meter
        meter.change(-1, now)
        if status:
            upstream.meter.record(status, latency, now)
            meter.completed(now)
        if not upstream.active and not upstream.inflight:
            self.table._retire(upstream)
        if self.waiters:
            self.dispatch()

    def answered(self, status: int, latency: float) -> None:
        """A response the gateway made itself (no revision reached: 404s excluded, queue full, ...)."""
        now = self.table.clock()
        self.none_meter.record(status, latency, now)
        self.meter.completed(now)


class RouteTable:
    """Routes published by the control plane; satisfies ``pilothouse.controllers.routes.RoutePublisher``.

    ``clock`` (monotonic seconds) is injectable for tests of the traffic windows; ``window`` is how many
    seconds of per-second samples and revision stats are kept.
    """

    def __init__(
        self,
        *,
        on_demand: OnDemand | None = None,
        clock: Callable[[], float] = time.monotonic,
        window: int = DEFAULT_WINDOW_S,
    ) -> None:
        self.clock = clock
        self.window = window
        self._on_demand = on_demand
        self._endpoints: dict[tuple[str, str], Endpoint] = {}
        self._by_prefix: dict[bytes, Endpoint] = {}
        self._upstreams: dict[str, Upstream] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # only while no loop is attached; the loop never takes it

    # -- the RoutePublisher protocol -----------------------------------------------------------------
    def publish(self, namespace: str, name: str, route: EndpointRoute | Sequence[str]) -> None:
        """Route the endpoint's URL by ``route`` (replacing the previous one whole).

        A plain list of URLs is still accepted (one revision, no hold) for callers not yet moved to
        :class:`EndpointRoute`.
        """
        if not isinstance(route, EndpointRoute):
            route = EndpointRoute.single(list(route))
        self._on_loop(self._apply, namespace, name, route)

    def withdraw(self, namespace: str, name: str) -> None:
        self._on_loop(self._withdraw, namespace, name)

    def inflight(self, url: str) -> int:
        upstream = self._upstreams.get(url)
        return upstream.inflight if upstream is not None else 0

    def drained(self, urls: Iterable[str]) -> bool:
        return all(self.inflight(u) == 0 for u in urls)

    def on_demand(self, callback: OnDemand | None) -> None:
        self._on_demand = callback

    def samples(self, namespace: str, name: str, seconds: float) -> list[Sample]:
        return self._on_loop(self._samples, namespace, name, seconds)

    def held(self, namespace: str, name: str) -> int:
        """Requests waiting in the endpoint's queue right now (held for a replica, or over the limit)."""
        return self._on_loop(self._held, namespace, name)

    def revision_stats(self, namespace: str, name: str, revision: int, seconds: float) -> RevisionStats:
        return self._on_loop(self._revision_stats, namespace, name, str(revision), seconds)

    # -- reads -------------------------------------------------------------------------------------
    def known(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._endpoints

    def route(self, namespace: str, name: str) -> EndpointRoute | None:
        endpoint = self._endpoints.get((namespace, name))
        return endpoint.route if endpoint is not None else None

    def routes(self) -> dict[tuple[str, str], EndpointRoute]:
        return {k: e.route for k, e in self._endpoints.items()}

    def upstreams(self, namespace: str, name: str) -> tuple[str, ...]:
        """URLs taking new requests for the endpoint (every revision in the current split)."""
        endpoint = self._endpoints.get((namespace, name))
        return tuple(u.url for r in endpoint.revisions for u in r.upstreams) if endpoint else ()

    def by_prefix(self, prefix: bytes) -> Endpoint | None:
        """The endpoint served at ``/<namespace>/<name>`` (raw path bytes), for the request path."""
        return self._by_prefix.get(prefix)

    def meters(self) -> Iterator[EndpointMeter]:
        return iter([e.meter for e in self._endpoints.values()])

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the gateway serves on; from now on state changes are applied on it."""
        self._loop = loop

    def close(self) -> None:
        for upstream in self._upstreams.values():
            upstream.pool.close()

    # -- internals (on the loop) -----------------------------------------------------------------
    def _on_loop(self, fn: Callable[..., T], *args: object) -> T:
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            with self._lock:  # no loop serves yet: publishers in several threads take turns
                return fn(*args)
        try:
            if asyncio.get_running_loop() is loop:
                return fn(*args)
        except RuntimeError:
            pass
        done = threading.Event()
        box: list[T] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                box.append(fn(*args))
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        loop.call_soon_threadsafe(run)
        if not done.wait(_HOP_TIMEOUT_S):
            raise TimeoutError(
                f"the gateway's event loop did not run {fn.__name__} within {_HOP_TIMEOUT_S} s"
            )
        if errors:
            raise errors[0]
        return box[0]

    def _apply(self, namespace: str, name: str, route: EndpointRoute) -> None:
        key = (namespace, name)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = Endpoint(namespace, name, self)
            self._endpoints[key] = endpoint
            self._by_prefix[f"/{namespace}/{name}".encode()] = endpoint
        previous = endpoint.route.urls
        wanted = route.urls
        endpoint.apply(route)
        for url in previous - wanted:
            self._deactivate(url)

    def _withdraw(self, namespace: str, name: str) -> None:
        endpoint = self._endpoints.pop((namespace, name), None)
        if endpoint is None:
            return
        self._by_prefix.pop(f"/{namespace}/{name}".encode(), None)
        endpoint.withdrawn = True
        endpoint.dispatch()
        for url in endpoint.route.urls:
            self._deactivate(url)

    def _upstream(self, url: str, limit: int | None, meter: RevisionMeter) -> Upstream:
        upstream = self._upstreams.get(url)
        if upstream is None:
            upstream = self._upstreams[url] = Upstream(url, limit, meter)
        else:
            upstream.limit = limit
            upstream.meter = meter
            upstream.active = True
        return upstream

    def _deactivate(self, url: str) -> None:
        upstream = self._upstreams.get(url)
        if upstream is not None and not any(url in e.route.urls for e in self._endpoints.values()):
            upstream.active = False
            if not upstream.inflight:
                self._retire(upstream)

    def _retire(self, upstream: Upstream) -> None:
        if self._upstreams.get(upstream.url) is upstream:
            del self._upstreams[upstream.url]
        upstream.pool.close()

    def _signal_demand(self, namespace: str, name: str) -> None:
        callback = self._on_demand
        if callback is None:
            return
        try:
            callback(namespace, name)
        except Exception:
            log.exception("on_demand callback failed for %s/%s", namespace, name)

    def _held(self, namespace: str, name: str) -> int:
        endpoint = self._endpoints.get((namespace, name))
        return endpoint.meter.queued if endpoint is not None else 0

    def _samples(self, namespace: str, name: str, seconds: float) -> list[Sample]:
        endpoint = self._endpoints.get((namespace, name))
        return endpoint.meter.samples(seconds) if endpoint is not None else []

    def _revision_stats(self, namespace: str, name: str, revision: str, seconds: float) -> RevisionStats:
        endpoint = self._endpoints.get((namespace, name))
        meter = endpoint.meter.revisions.get(revision) if endpoint is not None else None
        return meter.stats(seconds, self.clock()) if meter is not None else RevisionStats(0, 0, None)
