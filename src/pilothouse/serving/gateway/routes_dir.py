"""Routes from a directory of JSON files: how the gateway follows the operator on Kubernetes.

The operator writes each endpoint's route as the key ``<namespace>.<name>`` of the ``pilothouse-routes``
ConfigMap; the gateway Deployment mounts that ConfigMap as a directory, and the kubelet replaces the
files atomically when it changes. ``RoutesDirectory.sync`` publishes every changed file and withdraws
every file that disappeared, so calling it on a timer converges the route table to the ConfigMap —
level-triggered, like the controllers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson

from pilothouse.serving.gateway.routes import RouteTable
from pilothouse.serving.gateway.spec import EndpointRoute

log = logging.getLogger(__name__)


class RoutesDirectory:
    def __init__(self, directory: Path, routes: RouteTable) -> None:
        self.directory = directory
        self.routes = routes
        self._seen: dict[tuple[str, str], bytes] = {}

    def _read(self) -> dict[tuple[str, str], bytes]:
        found: dict[tuple[str, str], bytes] = {}
        if not self.directory.is_dir():
            return found
        for path in self.directory.iterdir():
            namespace, dot, name = path.name.partition(".")
            if path.name.startswith("..") or not dot or not path.is_file():
                continue  # the kubelet's ..data / ..timestamp entries, or a stray file
            found[(namespace, name)] = path.read_bytes()
        return found

    def sync(self) -> int:
        """Apply what changed since the last call; returns how many endpoints changed."""
        current = self._read()
        changed = 0
        for key, raw in current.items():
            if self._seen.get(key) == raw:
                continue
            try:
                route = EndpointRoute.from_json(orjson.loads(raw))
            except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring route file %s.%s: %s", key[0], key[1], exc)
                continue
            self.routes.publish(key[0], key[1], route)
            self._seen[key] = raw
            changed += 1
        for key in [k for k in self._seen if k not in current]:
            self.routes.withdraw(*key)
            del self._seen[key]
            changed += 1
        return changed
