"""``RouteConfigMap``: one JSON document per key in a ConfigMap, the gateway's route table on a cluster.

The operator writes each endpoint's route under the key ``<namespace>.<name>`` of the ConfigMap
``pilothouse-routes`` in the system namespace; the gateway Deployment reads (mounts or watches) it. A
ConfigMap keeps the data path free of any dependency on the operator being up, and it is one object to
inspect (``kubectl get cm pilothouse-routes -o yaml``). Writes are merge patches of one key, so
concurrent writers of different keys never overwrite each other, and unchanged values are not written
again. A ConfigMap holds at most 1 MiB: about a thousand endpoints with a few revisions each.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubernetes import client
from pilothouse.runtime.kubernetes.builders.gateway import ROUTES_CONFIGMAP  # the gateway mounts it
from pilothouse.runtime.kubernetes.builders.names import metadata, standard_labels
from pilothouse.runtime.kubernetes.rest import NativeApi


def route_key(namespace: str, name: str) -> str:
    """ConfigMap keys allow ``[-._a-zA-Z0-9]``; namespaces and names are DNS labels, so ``.`` separates."""
    return f"{namespace}.{name}"


class RouteConfigMap:
    def __init__(self, api_client: client.ApiClient, namespace: str, name: str = ROUTES_CONFIGMAP) -> None:
        self.api = NativeApi(api_client)
        self.namespace = namespace
        self.name = name
        self._written: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def _body(self, data: dict[str, str]) -> dict[str, Any]:
        labels = standard_labels(name="pilothouse-gateway", instance=self.name, component="routes")
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(self.name, self.namespace, labels),
            "data": data,
        }

    def put(self, key: str, value: dict[str, Any] | None) -> None:
        """Set (or, with None, remove) one key; a no-op when it already holds that value."""
        text = None if value is None else json.dumps(value, sort_keys=True)
        with self._lock:
            if key in self._written and self._written[key] == text:
                return
        try:
            self.api.patch("ConfigMap", self.namespace, self.name, {"data": {key: text}})
        except ApiException as exc:
            if exc.status != 404:
                raise
            if text is not None:
                try:
                    self.api.create(self._body({key: text}))
                except ApiException as again:
                    if again.status != 409:
                        raise
                    self.api.patch("ConfigMap", self.namespace, self.name, {"data": {key: text}})
        with self._lock:
            self._written[key] = text

    def read(self) -> dict[str, Any]:
        """Every route, decoded (for tests and ``describe``)."""
        doc = self.api.get("ConfigMap", self.namespace, self.name) or {}
        return {k: json.loads(v) for k, v in (doc.get("data") or {}).items()}
