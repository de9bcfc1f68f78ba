"""Plain values exchanged between the control plane and the gateway: routes in, measurements out.

Pure data (no I/O, no event loop): the ``RoutePublisher`` protocol in ``pilothouse.controllers.routes``
re-exports these, so a controller builds an :class:`EndpointRoute` without importing the proxy, and
the same values travel as JSON to a gateway running in its own process (``to_json`` / ``from_json``).

A route lists the endpoint's **revisions**, each with its traffic ``weight`` (percent; the weights of
the revisions that have one sum to 100) and its **ready replicas** (base URL and optional hard
concurrency limit, the endpoint's ``containerConcurrency``). ``hold`` says what to do while no
revision has a ready replica: hold requests in the endpoint's bounded queue (scale-from-zero, or the
first replica still starting) instead of answering 503 at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_QUEUE_SIZE = 1000
DEFAULT_QUEUE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Replica:
    """One ready replica: its base URL (``http://host:port``) and hard limit of in-flight requests."""

    url: str
    concurrency: int | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith("http://"):
            raise ValueError(f"replica URL must be http://host:port, got {self.url!r}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1 or None, got {self.concurrency}")


@dataclass(frozen=True, slots=True)
class RevisionRoute:
    """A revision's share of traffic (percent, 0-100) and its ready replicas (possibly none yet)."""

    revision: int
    weight: int
    replicas: tuple[Replica, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 100:
            raise ValueError(f"weight must be 0..100, got {self.weight}")


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    """Everything the gateway needs to route one endpoint.

    - ``revisions``: weights of the revisions with a weight must sum to 100 (a revision with weight 0
      gets traffic only when no weighted revision has a ready replica). Empty: known, nothing ready.
    - ``hold``: while no revision has a ready replica, hold requests (up to ``queue_size`` of them, each
      at most ``queue_timeout`` seconds) instead of answering 503; the gateway signals demand at once.
    - ``queue_size`` / ``queue_timeout``: the endpoint's one bounded queue, used both for holding and
      for requests that find every replica at its concurrency limit.
    """

    revisions: tuple[RevisionRoute, ...] = ()
    hold: bool = False
    queue_size: int = DEFAULT_QUEUE_SIZE
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT_S

    def __post_init__(self) -> None:
        weighted = [r.weight for r in self.revisions if r.weight > 0]
        if weighted and sum(weighted) != 100:
            raise ValueError(f"revision weights must sum to 100, got {sum(weighted)}")
        if len({r.revision for r in self.revisions}) != len(self.revisions):
            raise ValueError("revisions must be distinct")
        if self.queue_size < 0 or self.queue_timeout <= 0:
            raise ValueError("queue_size must be >= 0 and queue_timeout > 0")

    @classmethod
    def single(
        cls,
        urls: Iterable[str],
        *,
        revision: int = 1,
        concurrency: int | None = None,
        hold: bool = False,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        queue_timeout: float = DEFAULT_QUEUE_TIMEOUT_S,
    ) -> EndpointRoute:
        """One revision taking all traffic on these replicas (the common, no-rollout case)."""
        replicas = tuple(Replica(u, concurrency) for u in urls)
        return cls((RevisionRoute(revision, 100, replicas),), hold, queue_size, queue_timeout)

    @property
    def urls(self) -> frozenset[str]:
        return frozenset(r.url for rev in self.revisions for r in rev.replicas)

    def to_json(self) -> dict[str, Any]:
        return {
            "revisions": [
                {
                    "revision": rev.revision,
                    "weight": rev.weight,
                    "replicas": [{"url": r.url, "concurrency": r.concurrency} for r in rev.replicas],
                }
                for rev in self.revisions
            ],
            "hold": self.hold,
            "queueSize": self.queue_size,
            "queueTimeoutSeconds": self.queue_timeout,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EndpointRoute:
        revisions = tuple(
            RevisionRoute(
                int(rev["revision"]),
                int(rev["weight"]),
                tuple(Replica(str(r["url"]), r.get("concurrency")) for r in rev.get("replicas", ())),
            )
            for rev in data.get("revisions", ())
        )
        return cls(
            revisions,
            bool(data.get("hold", False)),
            int(data.get("queueSize", DEFAULT_QUEUE_SIZE)),
            float(data.get("queueTimeoutSeconds", DEFAULT_QUEUE_TIMEOUT_S)),
        )


@dataclass(frozen=True, slots=True)
class Sample:
    """One second of an endpoint's traffic: ``t`` is the second's start (gateway clock, whole seconds),
    ``concurrency`` the time-weighted average of in-flight + queued requests over it, ``rps`` the
    requests completed in it (any status)."""

    t: float
    concurrency: float
    rps: int


@dataclass(frozen=True, slots=True)
class RevisionStats:
    """A revision's requests over a window: count, 5xx count, and p99 latency (None without requests).

    ``p99_seconds`` is the upper bound of the histogram bucket holding the 99th percentile (buckets are
    ~10 % wide), so it over- rather than under-states latency.
    """

    requests: int
    errors: int
    p99_seconds: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0
