"""``KubernetesRoutePublisher``: the controllers' ``RoutePublisher`` writing the gateway's ConfigMap.

A thin adapter. Each endpoint's ``EndpointRoute`` is stored as its ``to_json()`` under the key
``<namespace>.<name>`` of the ConfigMap ``pilothouse-routes`` in the system namespace
(``runtime.kubernetes.routes``); the gateway Deployment reads it back with ``EndpointRoute.from_json``.
The upstream URLs are revision Services (``runtime.kubernetes.replicas``), so the gateway splits
traffic between revisions and kube-proxy spreads it over a revision's ready pods.

What the in-process gateway answers and this adapter cannot (the gateway is another process here):

- ``inflight``/``drained`` report 0/True: drain by replica is approximate on Kubernetes (the Deployment
  picks the pods; readiness and the termination grace period finish their requests);
- ``samples``/``revision_stats`` are empty/zero until the gateway exports its numbers to the operator,
  so the autoscaler keeps the floor and a canary's analysis sees no traffic;
- ``on_demand`` (scale from zero) is recorded but never called.

``publish`` also accepts the shape the endpoint reconciler passed while the protocol was changing (a
list of per-revision routes with ``upstreams`` and a ``hold`` flag), so the adapter works on both sides
of that change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pilothouse.controllers.routes import EndpointRoute, Replica, RevisionRoute, RevisionStats, Sample
from pilothouse.runtime.kubernetes.routes import RouteConfigMap, route_key


def as_endpoint_route(route: EndpointRoute | Sequence[Any], hold: bool = False) -> EndpointRoute:
    """``route`` itself, or the route a list of per-revision routes (``revision``, ``weight``,
    ``upstreams``, ``concurrency_limit``) or of plain URLs describes."""
    if isinstance(route, EndpointRoute):
        return route
    if all(isinstance(r, str) for r in route):
        return EndpointRoute.single([str(u) for u in route], hold=hold)
    revisions = tuple(
        RevisionRoute(
            int(r.revision),
            int(r.weight),
            tuple(Replica(str(u), getattr(r, "concurrency_limit", None)) for u in dict.fromkeys(r.upstreams)),
        )
        for r in route
    )
    return EndpointRoute(revisions, hold)


class KubernetesRoutePublisher:
    def __init__(self, configmap: RouteConfigMap) -> None:
        self.configmap = configmap
        self.demand_callback: Callable[[str, str], None] | None = None

    def publish(self, namespace: str, name: str, route: Any, hold: bool = False) -> None:
        value = as_endpoint_route(route, hold).to_json()
        value.update(namespace=namespace, name=name)
        self.configmap.put(route_key(namespace, name), value)

    def withdraw(self, namespace: str, name: str) -> None:
        self.configmap.put(route_key(namespace, name), None)

    def inflight(self, url: str) -> int:
        return 0

    def drained(self, urls: Iterable[str]) -> bool:
        return True

    def on_demand(self, callback: Callable[[str, str], None] | None) -> None:
        self.demand_callback = callback

    def samples(self, namespace: str, name: str, seconds: float) -> list[Sample]:
        return []

    def revision_stats(self, namespace: str, name: str, revision: int, seconds: float) -> RevisionStats:
        return RevisionStats(requests=0, errors=0, p99_seconds=None)
