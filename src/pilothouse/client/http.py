"""``PilothouseClient``: one method per API operation, typed objects in and out.

It is synchronous (the CLI is), takes an optional ``httpx`` transport so tests can run it against an
in-process app, and implements ``apply`` the way kubectl does: create, or read-modify-write on conflict.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import ValidationError

from pilothouse.api.meta import API_VERSION
from pilothouse.api.registry import KINDS, KindInfo, Resource, to_document
from pilothouse.client.errors import ApiError, ServerUnreachable, UnreadableResponse


@dataclass(frozen=True)
class ApplyResult:
    action: Literal["created", "configured", "unchanged"]
    object: Resource


class PilothouseClient:
    def __init__(
        self, base_url: str, *, transport: httpx.BaseTransport | None = None, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PilothouseClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.base_url, type(exc).__name__) from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            raise ApiError.from_response(
                response.status_code, body, f"{method} {path}: HTTP {response.status_code}"
            )
        return response.json()

    @staticmethod
    def _collection(info: KindInfo, namespace: str | None) -> str:
        if namespace is None or not info.namespaced:
            return f"/apis/{API_VERSION}/{info.plural}"
        return f"/apis/{API_VERSION}/namespaces/{namespace}/{info.plural}"

    @staticmethod
    def _parse(doc: Any) -> Resource:
        kind = str(doc.get("kind", "?")) if isinstance(doc, dict) else "?"
        name = str((doc.get("metadata") or {}).get("name", "?")) if isinstance(doc, dict) else "?"
        info = KINDS.get(kind)
        if info is None:
            raise UnreadableResponse(kind, name, "unknown kind")
        try:
            return info.model.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UnreadableResponse(
                kind, name, f"{where}: {first['msg']}" if where else first["msg"]
            ) from None

    # -- resources --------------------------------------------------------------------------------

    def version(self) -> dict[str, str]:
        result: dict[str, str] = self._request("GET", "/version")
        return result

    def healthy(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def create(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        info = KINDS[obj.kind]
        params = {"dryRun": "All"} if dry_run else {}
        doc = self._request(
            "POST", self._collection(info, obj.metadata.namespace), json=to_document(obj), params=params
        )
        return self._parse(doc)

    def get(self, info: KindInfo, namespace: str, name: str) -> Resource:
        return self._parse(self._request("GET", f"{self._collection(info, namespace)}/{name}"))

    def list(
        self, info: KindInfo, namespace: str | None = None, selector: str | None = None
    ) -> builtins.list[Resource]:
        params = {"labelSelector": selector} if selector else {}
        doc = self._request("GET", self._collection(info, namespace), params=params)
        return [self._parse(item) for item in doc["items"]]

    def replace(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        info = KINDS[obj.kind]
        params = {"dryRun": "All"} if dry_run else {}
        path = f"{self._collection(info, obj.metadata.namespace)}/{obj.metadata.name}"
        return self._parse(self._request("PUT", path, json=to_document(obj), params=params))

    def delete(self, info: KindInfo, namespace: str, name: str) -> Resource:
        return self._parse(self._request("DELETE", f"{self._collection(info, namespace)}/{name}"))

    def apply(self, obj: Resource, *, dry_run: bool = False, retries: int = 5) -> ApplyResult:
        """Create the object, or update its spec, labels and annotations if it exists (last writer wins)."""
        info = KINDS[obj.kind]
        for _ in range(retries):
            try:
                return ApplyResult("created", self.create(obj, dry_run=dry_run))
            except ApiError as exc:
                if exc.reason != "AlreadyExists":
                    raise
            current = self.get(info, obj.metadata.namespace, obj.metadata.name)
            desired = current.model_copy(deep=True)
            desired.metadata.labels = obj.metadata.labels
            desired.metadata.annotations = self._applied_annotations(current, obj)
            desired.spec = obj.spec
            if to_document(desired) == to_document(current):
                return ApplyResult("unchanged", current)
            try:
                return ApplyResult("configured", self.replace(desired, dry_run=dry_run))
            except ApiError as exc:
                if exc.reason not in {"Conflict", "NotFound"}:
                    raise
        raise ApiError(
            409, "Conflict", f"{obj.kind} {obj.metadata.name}: gave up after {retries} conflicting writes"
        )

    def _applied_annotations(self, current: Resource, applied: Resource) -> dict[str, str]:
        """The annotations an apply leaves on the object: the manifest's (a backend may keep its own)."""
        return dict(applied.metadata.annotations)

    # -- observations -----------------------------------------------------------------------------

    def events(
        self, namespace: str, kind: str | None = None, name: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        params = {k: v for k, v in {"kind": kind, "name": name}.items() if v}
        doc = self._request("GET", f"/apis/{API_VERSION}/namespaces/{namespace}/events", params=params)
        items: builtins.list[dict[str, Any]] = doc["items"]
        return items

    def replicas(self, info: KindInfo, namespace: str, name: str) -> builtins.list[dict[str, Any]]:
        doc = self._request("GET", f"{self._collection(info, namespace)}/{name}/replicas")
        items: builtins.list[dict[str, Any]] = doc["items"]
        return items

    def history(self, info: KindInfo, namespace: str, name: str) -> builtins.list[dict[str, Any]]:
        """Every spec generation of an object, oldest first: ``{generation, created, spec}``."""
        doc = self._request("GET", f"{self._collection(info, namespace)}/{name}/history")
        items: builtins.list[dict[str, Any]] = doc["items"]
        return items

    def replicas_of(self, owner_uid: str) -> builtins.list[dict[str, Any]]:
        """Replicas the runtime still runs for an owner uid (also after the owner was deleted)."""
        doc = self._request("GET", f"/apis/{API_VERSION}/replicas", params={"ownerUID": owner_uid})
        items: builtins.list[dict[str, Any]] = doc["items"]
        return items

    def logs(
        self,
        info: KindInfo,
        namespace: str,
        name: str,
        *,
        replica: str | None = None,
        follow: bool = False,
        tail: int | None = None,
    ) -> Iterator[str]:
        params: dict[str, Any] = {"follow": follow}
        if replica:
            params["replica"] = replica
        if tail is not None:
            params["tailLines"] = tail
        path = f"{self._collection(info, namespace)}/{name}/log"
        try:
            with self._http.stream("GET", path, params=params, timeout=None if follow else 30.0) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError.from_response(response.status_code, response.json(), f"GET {path}")
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.base_url, type(exc).__name__) from exc

    def watch(
        self,
        info: KindInfo,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        timeout: float = 60,
    ) -> Iterator[tuple[str, Resource]]:
        params: dict[str, Any] = {"watch": "true", "timeoutSeconds": timeout}
        if resource_version:
            params["resourceVersion"] = resource_version
        with self._http.stream(
            "GET", self._collection(info, namespace), params=params, timeout=timeout + 5
        ) as response:
            for line in response.iter_lines():
                if line:
                    event = json.loads(line)
                    yield event["type"], self._parse(event["object"])

    # -- top (observability: /apis/top.pilothouse.dev, served by the embedded control plane) ---------

    def top(
        self,
        view: Literal["endpoints", "jobs", "gpus"],
        namespace: str | None = None,
        window_seconds: int | None = None,
    ) -> dict[str, Any]:
        """A live summary for ``pilothouse top``: ``{"kind": ..., "items": [...]}``."""
        params: dict[str, Any] = {}
        if namespace:
            params["namespace"] = namespace
        if window_seconds is not None and view == "endpoints":
            params["window"] = window_seconds
        result: dict[str, Any] = self._request(
            "GET", f"/apis/top.pilothouse.dev/v1alpha1/{view}", params=params
        )
        return result

    # -- cost (docs/cost.md: GET /apis/pilothouse.dev/v1alpha1/cost) ---------------------------------------

    def cost(
        self,
        *,
        window: str = "7d",
        by: str = "team",
        team: str | None = None,
        idle: str = "separate",
        exact: bool = False,
    ) -> dict[str, Any]:
        """A ``CostReport``: ``items`` (one record per row of the view), ``total``, ``window``, ``columns``."""
        params: dict[str, Any] = {"window": window, "by": by, "idle": idle, "exact": str(exact).lower()}
        if team:
            params["team"] = team
        report: dict[str, Any] = self._request("GET", f"/apis/{API_VERSION}/cost", params=params)
        return report

    def price_book(self) -> dict[str, Any]:
        """The price book in force (``GET .../pricebook``): the document ``up --price-book`` reads."""
        book: dict[str, Any] = self._request("GET", f"/apis/{API_VERSION}/pricebook")
        return book

    def set_price_book(self, book: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the price book (``PUT .../pricebook``); a bad one raises ``ApiError`` with field causes."""
        result: dict[str, Any] = self._request("PUT", f"/apis/{API_VERSION}/pricebook", json=dict(book))
        return result
