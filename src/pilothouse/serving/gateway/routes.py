"""The gateway's route table: endpoint -> ready replica URLs, with a round-robin cursor per endpoint.

Controllers publish from their threads while the gateway reads on its event loop; each publish swaps in a
new immutable tuple, so readers never see a half-updated list and never take a lock.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field


@dataclass
class _Route:
    upstreams: tuple[str, ...]
    cursor: itertools.count[int] = field(default_factory=itertools.count)


class RouteTable:
    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], _Route] = {}
        self._lock = threading.Lock()

    def publish(self, namespace: str, name: str, upstreams: list[str]) -> None:
        key = (namespace, name)
        new = tuple(upstreams)
        with self._lock:
            current = self._routes.get(key)
            if current is None or current.upstreams != new:
                self._routes[key] = _Route(new)

    def withdraw(self, namespace: str, name: str) -> None:
        with self._lock:
            self._routes.pop((namespace, name), None)

    def known(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._routes

    def upstreams(self, namespace: str, name: str) -> tuple[str, ...]:
        route = self._routes.get((namespace, name))
        return route.upstreams if route else ()

    def pick(self, namespace: str, name: str, exclude: frozenset[str] = frozenset()) -> str | None:
        """Next upstream in round-robin order, skipping ``exclude`` (replicas that just failed to connect)."""
        route = self._routes.get((namespace, name))
        if route is None or not route.upstreams:
            return None
        candidates = [u for u in route.upstreams if u not in exclude]
        if not candidates:
            return None
        return candidates[next(route.cursor) % len(candidates)]
