"""The emulator as a server: kmock's HTTP server and handler, with the API routes served by our layer.

From kmock 0.8 we use: ``kmock.Server`` (an aiohttp server on 127.0.0.1 and an ephemeral port), the
``KubernetesScaffold`` handler (its request entry point and its DSL for scripted reactions on paths
outside the Kubernetes API), its ``KubernetesError`` type, and its bundled discovery snapshot of the
built-in resources (``discovery.py``).

Our layer serves every Kubernetes API path (``/api``, ``/apis``, ``/version``): kmock's own URL parsing
cannot address Namespaces (``/api/v1/namespaces`` is taken for a namespace prefix and fails with a
``ValueError``), and its state handling lacks what clients need (see ``objects.py``). The server runs in
its own thread and event loop, so synchronous clients (the official client, kubectl in a subprocess,
kopf's ``KopfRunner`` thread) can use it from the test thread; the state it serves is thread-safe, so the
test thread can also inject faults and fake controllers directly.
"""

from __future__ import annotations

import asyncio
import json
import threading
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

from . import patching, tables
from .discovery import Catalog, ResourceType, openapi_v3_group_version, openapi_v3_index, server_version
from .errors import KubernetesError, bad_request, invalid, status_body, unsupported_media_type
from .faults import FaultRule, Faults
from .kubelet import Kubelet, mark_deployment_ready, mark_job_succeeded
from .objects import ClusterState, Obj
from .selectors import field_matcher, label_matcher
from .watch import WatchHub, serve_watch

_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


@attrs.define(kw_only=True)
class EmulatorHandler(kmock.KubernetesScaffold):
    """kmock's handler with the Kubernetes API paths routed to the emulator; other paths to kmock's DSL."""

    emulator: Any = None

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw_request.read()
        if not raw_request.path.startswith(("/api", "/version", "/openapi")):
            return await super().__call__(raw_request)
        emulator: KubernetesApiEmulator = self.emulator
        emulator.requests.append((raw_request.method, raw_request.path_qs))
        fault = emulator.faults.match(raw_request.method, raw_request.path_qs)
        if fault is not None:
            return aiohttp.web.json_response(fault, status=int(str(fault["code"])))
        try:
            return await emulator.dispatch(raw_request)
        except KubernetesError as exc:
            body = status_body(exc.status, exc.reason or "InternalError", exc.message or "", exc.details)
            return aiohttp.web.json_response(body, status=exc.status)
        except Exception as exc:
            emulator.server_errors.append(exc)
            body = status_body(500, "InternalError", repr(exc), {"traceback": traceback.format_exc()})
            return aiohttp.web.json_response(body, status=500)


def _json(body: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.json_response(body, status=status)


def _flag(value: str | None) -> bool:
    return value in {"true", "1", "True"}


class KubernetesApiEmulator:
    """A stateful Kubernetes API on 127.0.0.1 for tests; ``start()``/``stop()`` or use as a context manager."""

    def __init__(
        self,
        *,
        port: int = 0,
        retain_changes: int = 100_000,
        bookmark_interval: float = 1.0,
    ) -> None:
        self.catalog = Catalog.builtin()
        self.state = ClusterState(self.catalog, retain_changes=retain_changes)
        self.faults = Faults()
        self.bookmark_interval = bookmark_interval
        self.requests: list[tuple[str, str]] = []
        """(method, path with query) of every API request, for white-box asserts."""
        self.server_errors: list[BaseException] = []
        """Unexpected exceptions in the emulator itself (answered as 500); tests should assert it is empty."""
        self.handler = EmulatorHandler(emulator=self)
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._hub: WatchHub | None = None
        self._server: kmock.Server | None = None
        self._kubelets: list[Kubelet] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> KubernetesApiEmulator:
        self._thread = threading.Thread(target=self._run, name="k8s-api-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the Kubernetes API emulator did not start within 30 s")
        if self._failure is not None:
            raise RuntimeError("the Kubernetes API emulator failed to start") from self._failure
        return self

    def stop(self) -> None:
        for kubelet in self._kubelets:
            kubelet.stop()
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(30)

    def __enter__(self) -> KubernetesApiEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        self._hub = WatchHub(asyncio.get_running_loop())
        self.state.subscribe(self._hub.notify_threadsafe)
        async with self.handler, kmock.Server(self.handler, port=self._port or None) as server:
            self._server = server
            self._ready.set()
            await self._stopping.wait()
            self._hub.drop_threadsafe(abrupt=False)
            for _ in range(100):
                await asyncio.sleep(0.01)
                if not self._hub.open_streams:
                    break

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the emulator first"
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig for kubectl and the official client (plain HTTP, no credentials)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulator"}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace},
                }
            ],
            "current-context": "emulator",
            "preferences": {},
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- test API ----------------------------------------------------------------------------------

    def fail(self, method: str, path: str, status: int = 503, times: int = 1, message: str = "") -> FaultRule:
        """Answer the next ``times`` requests matching (method or ``*``, path regex) with ``status``."""
        return self.faults.add(method, path, status, times, message)

    def drop_watches(self, *, abrupt: bool = False) -> None:
        """End every open watch stream: cleanly (like the apiserver's timeout) or by closing the connection."""
        assert self._hub is not None
        self._hub.drop_threadsafe(abrupt=abrupt)

    def compact(self) -> int:
        """Forget the change log; watching from any older resourceVersion now gets 410 Expired."""
        return self.state.compact()

    def mark_deployment_ready(self, namespace: str, name: str) -> Obj:
        return mark_deployment_ready(self.state, namespace, name)

    def mark_job_succeeded(self, namespace: str, name: str) -> Obj:
        return mark_job_succeeded(self.state, namespace, name)

    def start_kubelet(self, *, jobs: bool = False) -> Kubelet:
        kubelet = Kubelet(self.state, jobs=jobs).start()
        self._kubelets.append(kubelet)
        return kubelet

    def resource(self, api_version: str, plural: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        rt = self.catalog.find(group, version, plural)
        if rt is None:
            raise KeyError(f"{api_version} {plural} is not served")
        return rt

    def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> Obj:
        """Read an object directly (no HTTP); raises ``KubernetesError`` (404) if it is absent."""
        return self.state.get(self.resource(api_version, plural), namespace, name)

    def create(self, body: Obj, namespace: str = "") -> Obj:
        """Create an object directly (no HTTP), e.g. fixtures and CRDs; same admission as a POST."""
        rt = self.catalog.by_kind(body["apiVersion"], body["kind"])
        if rt is None:
            raise KeyError(f"{body['apiVersion']} {body['kind']} is not served")
        return self.state.create(rt, namespace or body.get("metadata", {}).get("namespace", ""), body)

    # -- HTTP --------------------------------------------------------------------------------------

    async def dispatch(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        path = raw.path.rstrip("/")
        parts = [p for p in path.split("/") if p]
        if path == "/version":
            return _json(server_version())
        if parts[:2] == ["openapi", "v2"]:
            # An empty protobuf message is a valid, empty OpenAPI v2 document: kubectl's client-side
            # validation then finds no schema and leaves validation to the server.
            return aiohttp.web.Response(body=b"", content_type=OPENAPI_V2_PROTOBUF)
        if parts[:2] == ["openapi", "v3"]:
            if len(parts) == 2:
                return _json(openapi_v3_index(self.catalog))
            gv = parts[2:]
            doc = openapi_v3_group_version(self.catalog, *(("", gv[1]) if gv[0] == "api" else (gv[1], gv[2])))
            if doc is None:
                raise _no_such_resource()
            return _json(doc)
        if parts == ["api"]:
            return _json(self.catalog.api_versions(f"127.0.0.1:{self.port}"))
        if parts == ["apis"]:
            return _json(self.catalog.api_group_list())
        if parts[0] == "api":
            group, version, rest = "", parts[1] if len(parts) > 1 else "", parts[2:]
        else:
            group = parts[1] if len(parts) > 1 else ""
            version, rest = (parts[2] if len(parts) > 2 else ""), parts[3:]
            if len(parts) == 2:
                doc = self.catalog.api_group(group)
                if doc is None:
                    raise _no_such_resource()
                return _json(doc)
        if not rest:
            listing = self.catalog.resource_list(group, version)
            if listing is None:
                raise _no_such_resource()
            return _json(listing)
        namespace: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (group == "" and rest[2] in _NAMESPACE_SUBRESOURCES and len(rest) == 3)
        ):
            namespace, rest = rest[1], rest[2:]
        plural, name = rest[0], (rest[1] if len(rest) > 1 else None)
        subresource = "/".join(rest[2:]) or None
        rt = self.catalog.find(group, version, plural)
        if rt is None or (namespace is not None and not rt.namespaced):
            raise _no_such_resource()
        return await self._serve(raw, rt, namespace, name, subresource)

    async def _serve(
        self,
        raw: aiohttp.web.BaseRequest,
        rt: ResourceType,
        namespace: str | None,
        name: str | None,
        sub: str | None,
    ) -> aiohttp.web.StreamResponse:
        query = raw.query
        method = raw.method.upper()
        dry_run = query.get("dryRun") == "All"
        strict = query.get("fieldValidation") == "Strict"
        if sub not in (None, "status") or (sub == "status" and not rt.has_status):
            raise _no_such_resource()
        status = sub == "status"
        ns = namespace or ""
        if name is None:
            if method == "GET":
                match_label = label_matcher(query.get("labelSelector"))
                match_field = field_matcher(query.get("fieldSelector"), rt.field_selectors, rt.plural)

                def match(obj: Obj) -> bool:
                    return match_label(obj) and match_field(obj)

                if _flag(query.get("watch")):
                    return await self._watch(raw, rt, namespace, match)
                listing = self.state.list(
                    rt, namespace, match, int(query.get("limit") or 0), query.get("continue", "")
                )
                if tables.wants_table(raw.headers.get("Accept", "")):
                    return _json(
                        tables.table(
                            rt, listing["items"], listing["metadata"], query.get("includeObject", "")
                        )
                    )
                return _json(listing)
            if method == "POST":
                if rt.namespaced and namespace is None:
                    raise KubernetesError(
                        status=405,
                        reason="MethodNotAllowed",
                        message="the server does not allow this method on the requested resource",
                        details={},
                    )
                created = self.state.create(
                    rt, ns, await self._body(raw), dry_run=dry_run, strict_fields=strict
                )
                return _json(created, 201)
            if method == "DELETE":
                match_label = label_matcher(query.get("labelSelector"))
                victims = self.state.list(rt, namespace, match_label)["items"]
                for item in victims:
                    meta = item["metadata"]
                    self.state.delete(rt, meta.get("namespace", ""), meta["name"], dry_run=dry_run)
                return _json(
                    {"apiVersion": rt.api_version, "kind": f"{rt.kind}List", "metadata": {}, "items": victims}
                )
            raise _not_allowed()
        if rt.namespaced and namespace is None:
            raise _no_such_resource()
        if method == "GET":
            if _flag(query.get("watch")):
                match_field = field_matcher(f"metadata.name={name}", (), rt.plural)
                return await self._watch(raw, rt, namespace, match_field)
            obj = self.state.get(rt, ns, name)
            if tables.wants_table(raw.headers.get("Accept", "")):
                meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                return _json(tables.table(rt, [obj], meta, query.get("includeObject", "")))
            return _json(obj)
        if method == "PUT":
            body = await self._body(raw)
            return _json(
                self.state.replace(rt, ns, name, body, status=status, dry_run=dry_run, strict_fields=strict)
            )
        if method == "PATCH":
            content_type = raw.headers.get("Content-Type", "").split(";")[0].strip()
            patch = await self._body(raw, allow_list=True)
            apply = _patcher(rt, content_type, patch, name)
            return _json(
                self.state.patch(rt, ns, name, apply, status=status, dry_run=dry_run, strict_fields=strict)
            )
        if method == "DELETE":
            options = await self._body(raw, allow_empty=True)
            if _flag(query.get("orphanDependents")):
                options["orphanDependents"] = True
            if query.get("propagationPolicy"):
                options["propagationPolicy"] = query["propagationPolicy"]
            return _json(self.state.delete(rt, ns, name, options=options, dry_run=dry_run))
        raise _not_allowed()

    async def _watch(
        self, raw: aiohttp.web.BaseRequest, rt: ResourceType, namespace: str | None, match: Any
    ) -> aiohttp.web.StreamResponse:
        assert self._hub is not None
        rv = raw.query.get("resourceVersion") or "0"
        try:
            since = int(rv)
        except ValueError as exc:
            raise bad_request(f"invalid resource version: {rv!r}") from exc
        timeout = raw.query.get("timeoutSeconds")
        return await serve_watch(
            raw,
            self.state,
            self._hub,
            rt,
            namespace,
            match,
            since=since or None,
            timeout=float(timeout) if timeout else None,
            bookmarks=_flag(raw.query.get("allowWatchBookmarks")),
            bookmark_interval=self.bookmark_interval,
        )

    @staticmethod
    async def _body(
        raw: aiohttp.web.BaseRequest, *, allow_list: bool = False, allow_empty: bool = False
    ) -> Any:
        data = await raw.read()
        if not data.strip():
            if allow_empty:
                return {}
            raise bad_request("the request body is empty")
        content_type = raw.headers.get("Content-Type", "")
        if "protobuf" in content_type:
            raise unsupported_media_type(content_type)
        try:
            body = yaml.safe_load(data) if "yaml" in content_type else json.loads(data)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request was in an unknown format: {exc}") from exc
        if isinstance(body, list) and allow_list:
            return body
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        return body


def _patcher(rt: ResourceType, content_type: str, patch: Any, name: str) -> Any:
    def apply(current: Obj) -> Obj:
        try:
            if content_type == patching.JSON_PATCH:
                return patching.json_patch(current, patch)
            if isinstance(patch, list):
                raise bad_request("a merge patch must be a JSON object")
            if content_type == patching.MERGE_PATCH:
                result: Obj = patching.merge_patch(current, patch)
                return result
            if content_type == patching.STRATEGIC_MERGE_PATCH and not rt.custom:
                result = patching.strategic_merge_patch(current, patch)
                return result
        except patching.PatchError as exc:
            if exc.test_failed:
                raise invalid(
                    rt.kind,
                    name,
                    [{"reason": "FieldValueInvalid", "field": "", "message": str(exc)}],
                    rt.group,
                ) from exc
            raise KubernetesError(status=422, reason="Invalid", message=str(exc), details={}) from exc
        raise unsupported_media_type(content_type)

    return apply


def _no_such_resource() -> KubernetesError:
    return KubernetesError(
        status=404, reason="NotFound", message="the server could not find the requested resource", details={}
    )


def _not_allowed() -> KubernetesError:
    return KubernetesError(
        status=405,
        reason="MethodNotAllowed",
        message="the server does not allow this method on the requested resource",
        details={},
    )
