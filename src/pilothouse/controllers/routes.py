"""The seam between control plane and data plane: controllers publish how an endpoint's URL is routed.

Implementations: ``pilothouse.serving.gateway.routes.RouteTable`` (the gateway in this process) and
``pilothouse.serving.gateway.remote.RemoteRoutes`` (a gateway in its own process, over its admin API).
Controllers depend on this protocol and the plain values below only.

**A route** (:class:`EndpointRoute`) lists the endpoint's revisions, each with its traffic weight
(percent; the weights of revisions that have one sum to 100) and its *ready* replicas
(:class:`Replica`: base URL and ``concurrency`` = ``containerConcurrency``, the hard per-replica limit
of in-flight requests, None for none). ``hold=True`` (the endpoint allows ``minReplicas: 0``, or its
first replica is still starting) makes the gateway hold requests while no revision has a ready replica,
instead of answering 503. ``queue_size`` / ``queue_timeout`` bound the endpoint's queue::

    routes.publish("team", "iris", EndpointRoute(
        revisions=(
            RevisionRoute(revision=3, weight=90, replicas=(Replica("http://10.0.0.5:9000", concurrency=8),)),
            RevisionRoute(revision=4, weight=10, replicas=(Replica("http://10.0.0.6:9000", concurrency=8),)),
        ),
        hold=True,
    ))
    routes.publish("team", "iris", EndpointRoute.single(urls, revision=3, concurrency=8, hold=True))

A revision with weight but no ready replica gets no traffic: its share goes to the others. Publish the
route on every change of readiness: publishing a route with a ready replica wakes held requests at
once (there is no polling on the gateway side).

**Scale from zero**: register ``on_demand(callback)``; the gateway calls ``callback(namespace, name)``
when it starts holding requests for an endpoint with no ready replica (once per cold spell, until a
route with a ready replica is published), from the gateway's thread: the callback must be quick and
thread-safe (e.g. enqueue a reconcile).

**Drain protocol** (scale-down and rollouts): to stop replica ``url``,

1. publish the route *without* it — it takes no new request from that moment;
2. wait until ``drained([url])`` (or ``inflight(url) == 0``), bounded — e.g. :func:`wait_drained` with
   the endpoint's request timeout; in-flight requests complete normally, none is aborted;
3. then stop the process (if the bound expired, stop it anyway: those requests get a 502).

**Measurements** for the autoscaler and rollout analysis: ``samples(ns, name, seconds)`` — one
:class:`Sample` per complete second (time-weighted average concurrency = in-flight + queued, and
requests completed), oldest first, at least 120 s kept; ``revision_stats(ns, name, revision, seconds)``
— :class:`RevisionStats` (requests, 5xx, p99 latency) over the last ``seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from pilothouse.serving.gateway.spec import EndpointRoute, Replica, RevisionRoute, RevisionStats, Sample

__all__ = [
    "EndpointRoute",
    "Replica",
    "RevisionRoute",
    "RevisionStats",
    "RoutePublisher",
    "Sample",
    "wait_drained",
]


class RoutePublisher(Protocol):
    def publish(self, namespace: str, name: str, route: EndpointRoute) -> None:
        """Route the endpoint's URL by ``route``, replacing the previous route whole (idempotent).

        ``EndpointRoute()`` (no revisions): the endpoint is known but nothing is ready (503, or held if
        ``hold``). Replicas missing from the new route start draining.
        """
        ...

    def withdraw(self, namespace: str, name: str) -> None:
        """Forget the endpoint: its URL answers 404 again; its replicas start draining."""
        ...

    def inflight(self, url: str) -> int:
        """Requests the gateway has in flight to this replica now (0 for an unknown URL)."""
        ...

    def drained(self, urls: Iterable[str]) -> bool:
        """True when none of these replicas has a request in flight."""
        ...

    def on_demand(self, callback: Callable[[str, str], None] | None) -> None:
        """Register ``callback(namespace, name)``, called when requests start being held (see above)."""
        ...

    def samples(self, namespace: str, name: str, seconds: float) -> list[Sample]:
        """Per-second traffic of the endpoint over the last ``seconds`` complete seconds, oldest first."""
        ...

    def revision_stats(self, namespace: str, name: str, revision: int, seconds: float) -> RevisionStats:
        """Requests, 5xx count and p99 latency of one revision over the last ``seconds``."""
        ...


def wait_drained(
    routes: RoutePublisher, urls: Iterable[str], timeout: float, *, interval: float = 0.05
) -> bool:
    """Block (a controller thread) until ``urls`` are drained or ``timeout`` passes; True if drained."""
    wanted = list(urls)
    deadline = time.monotonic() + timeout
    while not routes.drained(wanted):
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
