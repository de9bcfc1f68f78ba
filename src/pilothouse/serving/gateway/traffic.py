"""The gateway's measurements: per endpoint and per revision, kept as plain ints on the event loop.

The request path only does integer adds and one ``bisect`` per histogram — no locks, no
prometheus_client children (their values take a mutex per update). Prometheus reads the same numbers
at scrape time through :class:`GatewayCollector`; the autoscaler and rollout analysis read the
in-process windows (:meth:`EndpointMeter.samples`, :meth:`RevisionMeter.stats`).

Everything here is touched only on the gateway's event loop (``RouteTable`` hops foreign-thread reads
onto it), so there is nothing to lock.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from pilothouse.serving.gateway.spec import RevisionStats, Sample

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: Prometheus histogram buckets (seconds): inference is ms-scale, held requests can take tens of seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
#: Finer, ~10 %-wide buckets (100 µs .. ~20 min) for windowed p99s; a p99 is reported as its bucket's bound.
FINE_BUCKETS: tuple[float, ...] = tuple(1e-4 * 1.1**i for i in range(172))
#: Why the gateway itself answered with an error (the ``reason`` label of ``errors_total``): bounded.
ERROR_REASONS = ("connect", "timeout", "upstream", "queue_full", "queue_timeout", "no_replica")
CODE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
NO_REVISION = "none"  # revision label of requests answered by the gateway before reaching a revision

Clock = Callable[[], float]


class _Second:
    __slots__ = ("errors", "latencies", "requests", "t")

    def __init__(self, t: int) -> None:
        self.t = t
        self.requests = 0
        self.errors = 0
        self.latencies: dict[int, int] = {}


class RevisionMeter:
    """Counters of one revision of one endpoint (or of ``NO_REVISION``)."""

    __slots__ = ("codes", "hist", "hist_sum", "in_flight", "label", "ring", "window")

    def __init__(self, label: str, window: int) -> None:
        self.label = label
        self.window = window
        self.codes = [0] * 6  # index: status // 100 (0 unused)
        self.hist = [0] * (len(LATENCY_BUCKETS) + 1)
        self.hist_sum = 0.0
        self.in_flight = 0
        self.ring: list[_Second | None] = [None] * window

    def record(self, status: int, latency: float, now: float) -> None:
        self.codes[status // 100 if 100 <= status < 600 else 5] += 1
        self.hist[bisect_left(LATENCY_BUCKETS, latency)] += 1
        self.hist_sum += latency
        t = int(now)
        slot = self.ring[t % self.window]
        if slot is None or slot.t != t:
            slot = self.ring[t % self.window] = _Second(t)
        slot.requests += 1
        if status >= 500:
            slot.errors += 1
        b = bisect_left(FINE_BUCKETS, latency)
        slot.latencies[b] = slot.latencies.get(b, 0) + 1

    def stats(self, seconds: float, now: float) -> RevisionStats:
        """Requests, 5xx and p99 over the last ``seconds`` (rounded up to whole seconds, the current
        second included)."""
        newest = int(now)
        oldest = newest - min(math.ceil(seconds), self.window) + 1
        requests = errors = 0
        merged: dict[int, int] = {}
        for slot in self.ring:
            if slot is not None and oldest <= slot.t <= newest:
                requests += slot.requests
                errors += slot.errors
                for b, n in slot.latencies.items():
                    merged[b] = merged.get(b, 0) + n
        if not requests:
            return RevisionStats(0, 0, None)
        rank = math.ceil(0.99 * requests)
        seen = 0
        for b in sorted(merged):
            seen += merged[b]
            if seen >= rank:
                return RevisionStats(requests, errors, FINE_BUCKETS[b] if b < len(FINE_BUCKETS) else math.inf)
        raise AssertionError("unreachable: the histogram holds every request")


class EndpointMeter:
    """One endpoint: its revisions' meters, queue gauge, errors by reason and per-second samples.

    ``samples`` are time-weighted: the level (in-flight + queued) is integrated over each second, so a
    request that is in flight for 250 ms of a second adds 0.25 to that second's concurrency.
    """

    __slots__ = (
        "_area", "_completed", "_last", "_level", "_sec", "_window", "clock", "errors", "name",
        "namespace", "queued", "revisions", "ring",
    )  # fmt: skip

    def __init__(self, namespace: str, name: str, clock: Clock, window: int) -> None:
        self.namespace = namespace
        self.name = name
        self.clock = clock
        self._window = window
        self.revisions: dict[str, RevisionMeter] = {}
        self.queued = 0
        self.errors = dict.fromkeys(ERROR_REASONS, 0)
        self.ring: deque[Sample] = deque(maxlen=window)
        now = clock()
        self._sec = math.floor(now)
        self._last = now
        self._area = 0.0
        self._level = 0
        self._completed = 0

    def revision(self, label: str) -> RevisionMeter:
        meter = self.revisions.get(label)
        if meter is None:
            meter = self.revisions[label] = RevisionMeter(label, self._window)
        return meter

    def prune(self, keep: set[str], max_revisions: int = 8) -> None:
        """Forget revisions outside ``keep`` with nothing in flight, keeping the newest few for analysis."""
        stale = [k for k, m in self.revisions.items() if k not in keep and m.in_flight == 0]
        for label in stale[: max(0, len(self.revisions) - max_revisions)]:
            del self.revisions[label]

    # -- concurrency integral ------------------------------------------------------------------
    def _roll(self, now: float) -> None:
        sec_now = math.floor(now)
        end = self._sec + 1
        self.ring.append(
            Sample(float(self._sec), self._area + self._level * (end - self._last), self._completed)
        )
        for s in range(max(end, sec_now - self._window), sec_now):  # whole idle seconds in between
            self.ring.append(Sample(float(s), float(self._level), 0))
        self._sec = sec_now
        self._last = float(sec_now)
        self._area = 0.0
        self._completed = 0

    def change(self, delta: int, now: float) -> None:
        if now >= self._sec + 1:
            self._roll(now)
        self._area += self._level * (now - self._last)
        self._last = now
        self._level += delta

    def completed(self, now: float) -> None:
        if now >= self._sec + 1:
            self._roll(now)
        self._completed += 1

    def samples(self, seconds: float) -> list[Sample]:
        """The last ``seconds`` complete seconds, oldest first (the current partial second excluded)."""
        now = self.clock()
        if now >= self._sec + 1:
            self._roll(now)
        ring = list(self.ring)
        return ring[-math.ceil(seconds) :] if seconds > 0 else []


class GatewayCollector(Collector):
    """Prometheus view of every endpoint's meters, built at scrape time (names per Prometheus conventions)."""

    def __init__(self, meters: Callable[[], Iterator[EndpointMeter]]) -> None:
        self._meters = meters

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "pilothouse_gateway_requests",
            "Requests answered through the gateway, by endpoint, revision and status code class.",
            labels=["namespace", "endpoint", "revision", "code"],
        )
        duration = HistogramMetricFamily(
            "pilothouse_gateway_request_duration_seconds",
            "Time from the request's arrival at the gateway to its response, queueing included.",
            labels=["namespace", "endpoint", "revision"],
        )
        in_flight = GaugeMetricFamily(
            "pilothouse_gateway_in_flight_requests",
            "Requests forwarded to a replica and not yet answered.",
            labels=["namespace", "endpoint", "revision"],
        )
        queued = GaugeMetricFamily(
            "pilothouse_gateway_queued_requests",
            "Requests waiting in the endpoint's queue (held for a replica or for a free slot).",
            labels=["namespace", "endpoint"],
        )
        errors = CounterMetricFamily(
            "pilothouse_gateway_errors",
            "Requests the gateway failed itself, by reason (connect, timeout, upstream, queue_full, ...).",
            labels=["namespace", "endpoint", "reason"],
        )
        bounds = [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]
        for meter in self._meters():
            ns, ep = meter.namespace, meter.name
            queued.add_metric([ns, ep], meter.queued)
            for reason, count in meter.errors.items():
                errors.add_metric([ns, ep, reason], count)
            for label, rev in meter.revisions.items():
                for i, code in enumerate(CODE_CLASSES, start=1):
                    if rev.codes[i]:
                        requests.add_metric([ns, ep, label, code], rev.codes[i])
                cumulative = 0
                buckets = []
                for bound, count in zip(bounds, rev.hist, strict=True):
                    cumulative += count
                    buckets.append((bound, cumulative))
                duration.add_metric([ns, ep, label], buckets, rev.hist_sum)
                in_flight.add_metric([ns, ep, label], rev.in_flight)
        yield from (requests, duration, in_flight, queued, errors)
