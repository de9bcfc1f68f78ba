"""``NativeApi``: plain-dict get/list/create/patch/delete/watch of the built-in kinds the runtime manages.

The builders speak plain dicts, so the applier does too. The official client's typed APIs would turn
every answer into generated model objects (and back), one method name per kind and verb; instead this
module serialises requests with the client's own ``ApiClient`` (auth, TLS, proxies and timeouts from
the injected configuration) and keeps the JSON as it came. It stays small because it knows only the
kinds in ``KINDS``. Errors stay ``ApiException``; :func:`is_gone` and :func:`is_transient` classify
them by HTTP status, never by message text.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException

from kubernetes import client
from pilothouse.api.meta import API_VERSION

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Kind:
    api_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        return f"{base}/{quote(name)}" if name else base


KINDS: dict[str, Kind] = {
    "Deployment": Kind("apps/v1", "deployments"),
    "Service": Kind("v1", "services"),
    "PodDisruptionBudget": Kind("policy/v1", "poddisruptionbudgets"),
    "Job": Kind("batch/v1", "jobs"),
    "Namespace": Kind("v1", "namespaces", namespaced=False),
    "ResourceQuota": Kind("v1", "resourcequotas"),
    "LimitRange": Kind("v1", "limitranges"),
    "NetworkPolicy": Kind("networking.k8s.io/v1", "networkpolicies"),
    "ConfigMap": Kind("v1", "configmaps"),
    "Node": Kind("v1", "nodes", namespaced=False),
    "Pod": Kind("v1", "pods"),
    # Our own custom resources, read when building native objects (labels, a Job's full spec).
    "ModelEndpointCR": Kind(API_VERSION, "modelendpoints"),
    "PilothouseJob": Kind(API_VERSION, "jobs"),
}


def is_gone(exc: ApiException) -> bool:
    return bool(exc.status == 404)


def is_transient(exc: ApiException) -> bool:
    """Worth retrying as is: conflicts, throttling, server errors, timeouts."""
    return bool(exc.status in (409, 429) or (exc.status or 0) >= 500)


class NativeApi:
    def __init__(self, api_client: client.ApiClient, *, timeout: float = 30.0) -> None:
        self.api_client = api_client
        self.timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: Any = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        http_method, url, header_params, request_body, post_params = serialized
        return self.api_client.call_api(
            http_method,
            url,
            header_params,
            request_body,
            post_params,
            _request_timeout=timeout or self.timeout,
        )

    def _json(self, method: str, path: str, **kwargs: Any) -> Obj:
        response = self._call(method, path, **kwargs)
        data = response.read()
        if response.status >= 400:
            raise ApiException(http_resp=response.response)
        result: Obj = json.loads(data) if data else {}
        return result

    # -- verbs ------------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self._json("GET", KINDS[kind].path(namespace, name))
        except ApiException as exc:
            if is_gone(exc):
                return None
            raise

    def list(self, kind: str, namespace: str | None = None, selector: str | None = None) -> list[Obj]:
        query = [("labelSelector", selector)] if selector else []
        listing = self._json("GET", KINDS[kind].path(namespace), query=query)
        items: list[Obj] = listing.get("items") or []
        return items

    def list_with_version(self, kind: str, selector: str | None = None) -> tuple[builtins.list[Obj], str]:
        query = [("labelSelector", selector)] if selector else []
        listing = self._json("GET", KINDS[kind].path(), query=query)
        return listing.get("items") or [], str((listing.get("metadata") or {}).get("resourceVersion", ""))

    def create(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        return self._json("POST", KINDS[obj["kind"]].path(meta.get("namespace")), body=obj)

    def patch(self, kind: str, namespace: str | None, name: str, patch: Obj) -> Obj:
        """A JSON merge patch (lists are replaced whole, ``None`` deletes a key)."""
        return self._json("PATCH", KINDS[kind].path(namespace, name), body=patch, content_type=MERGE_PATCH)

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        """Delete with background propagation; False when it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            self._json("DELETE", KINDS[kind].path(namespace, name), body=body)
        except ApiException as exc:
            if is_gone(exc):
                return False
            raise
        return True

    def create_or_patch(self, obj: Obj) -> Obj:
        """Create ``obj``, or merge-patch its labels, annotations and spec/data if it exists."""
        meta = obj["metadata"]
        try:
            return self.create(obj)
        except ApiException as exc:
            if exc.status != 409:
                raise
        patch: Obj = {"metadata": {k: meta[k] for k in ("labels", "annotations") if k in meta}}
        for key in ("spec", "data"):
            if key in obj:
                patch[key] = obj[key]
        return self.patch(obj["kind"], meta.get("namespace"), meta["name"], patch)

    def read_log(
        self, namespace: str, pod: str, *, follow: bool = False, tail: int | None = None
    ) -> Iterator[str]:
        query = [("follow", "true" if follow else "false")]
        if tail is not None:
            query.append(("tailLines", str(tail)))
        path = KINDS["Pod"].path(namespace, pod) + "/log"
        response = self._call("GET", path, query=query, timeout=None if follow else self.timeout)
        if response.status >= 400:
            response.read()
            raise ApiException(http_resp=response.response)
        raw = response.response
        try:
            for line in raw:
                yield line.decode(errors="replace").rstrip("\n")
        finally:
            raw.release_conn()

    def watch(
        self, kind: str, *, selector: str | None, resource_version: str, timeout_seconds: int
    ) -> Iterator[Obj]:
        """One watch request (all namespaces): yields the raw events ``{type, object}`` until it ends."""
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(timeout_seconds)),
            ("allowWatchBookmarks", "true"),
        ]
        if selector:
            query.append(("labelSelector", selector))
        response = self._call("GET", KINDS[kind].path(), query=query, timeout=(10, timeout_seconds + 5))
        if response.status >= 400:
            response.read()
            raise ApiException(http_resp=response.response)
        raw = response.response
        try:
            for line in raw:
                if line.strip():
                    event: Obj = json.loads(line)
                    yield event
        finally:
            raw.release_conn()
