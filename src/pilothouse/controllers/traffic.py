"""What the endpoint controller reads from the data plane and from the autoscaler, as protocols.

The embedded gateway (in-process) implements ``TrafficSource``; on Kubernetes the gateway runs as its
own Deployment and the operator reads the same numbers over HTTP. The controller never imports the
gateway or the autoscaler implementation.
"""

from __future__ import annotations

from typing import Protocol

from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.controllers.routes import RevisionStats, Sample
from pilothouse.runtime.protocol import ReplicaState


class TrafficSource(Protocol):
    def revision_stats(self, namespace: str, name: str, revision: int, seconds: float) -> RevisionStats:
        """Requests, 5xx errors and p99 latency of one revision over the last ``seconds``."""
        ...

    def held(self, namespace: str, name: str) -> int:
        """Requests held right now because no replica is ready (scale-from-zero demand)."""
        ...

    def samples(self, namespace: str, name: str, seconds: float) -> list[Sample]:
        """One sample per second of the endpoint's traffic (concurrency, completed requests), oldest first."""
        ...


class ReplicaDecider(Protocol):
    def desired(self, endpoint: ModelEndpoint, observed: list[ReplicaState], now: float) -> int:
        """How many replicas the endpoint should have now (the autoscaler's decision)."""
        ...

    def explain(self, uid: str) -> str | None:
        """Why the last decision for that endpoint was what it was, in plain words (for the event)."""
        ...

    def forget(self, uid: str) -> None:
        """Drop what is remembered about a deleted endpoint."""
        ...
