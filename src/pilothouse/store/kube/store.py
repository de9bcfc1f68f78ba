"""``KubeStore``: the Store contract on our custom resources; the Kubernetes API is the source of truth.

Namespaces are teams. Every method is one or a few calls of the official client's ``CustomObjectsApi``
(plus ``CoreV1Api`` for Events and ``AppsV1Api`` for ControllerRevisions); the API server sets uid,
resourceVersion, generation and creationTimestamp, checks resourceVersions and splits spec from status.
Errors are mapped by status and ``reason`` (``errors.py``).

Choices where the contract leaves room or Kubernetes differs from the SQL store:

- ``create`` with a status: Kubernetes drops status on create (status subresource), so the store writes
  it with a second call to ``/status``; the object then has two resourceVersions in its history.
- ``update``/``update_status`` without a resourceVersion ("last writer wins"): custom resources refuse
  unconditional updates, so the store reads the current version and retries on a conflict. A uid that
  differs from the stored one is a ``Conflict`` (the object was re-created), as in the SQL store.
- The namespace must exist: creating in a missing namespace is ``NotFound`` (the API server's 404).
- ``delete`` of an object with finalizers only marks it (``deletionTimestamp``); it disappears when the
  finalizers are removed. Its spec history is deleted with it (``history.py``).
- ``current_version`` is one ``list`` of ModelEndpoints with ``limit=1``: a consistent list's
  resourceVersion is the cluster's current (etcd) revision, which is global, so one kind is enough.
- ``history``: ControllerRevisions owned by the object (``history.py``); ``record_event``/``list_events``:
  core/v1 Events (``events.py``). Team revisions and events live in ``system_namespace``.
- resourceVersions are treated as integers (the Store protocol's ``WatchEvent.resource_version`` is an
  int). Real API servers backed by etcd use integers; Kubernetes asks clients to treat them as opaque.
- ``close`` ends open watches (within ``watch_poll_interval``); the injected ``ApiClient`` belongs to the
  caller and is not closed.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from kubernetes import client
from pilothouse.api.event import Event, ObjectReference
from pilothouse.api.registry import KINDS, Resource
from pilothouse.api.selectors import Requirement
from pilothouse.store.kube import events, history
from pilothouse.store.kube.codec import (
    CustomResource,
    from_document,
    render_selector,
    resource_of,
    to_document,
)
from pilothouse.store.kube.errors import translate
from pilothouse.store.kube.watching import follow
from pilothouse.store.protocol import Conflict, ListResult, NotFound, SpecRevision, WatchEvent

_SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp")


class KubeStore:
    """The Store contract on custom resources, through an injected ``kubernetes.client.ApiClient``."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        system_namespace: str = "default",
        watch_poll_interval: float = 0.5,
        update_retries: int = 20,
    ) -> None:
        self.system_namespace = system_namespace
        self.watch_poll_interval = watch_poll_interval
        self.update_retries = update_retries
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._closed = threading.Event()

    # -- plumbing ----------------------------------------------------------------------------------

    @staticmethod
    def _resource(kind: str) -> CustomResource:
        resource = resource_of(kind)
        if resource is None:
            raise NotFound(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
        return resource

    @staticmethod
    def _call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the client; API errors become store errors. Results are the client's (loosely typed) ones."""
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise translate(exc, what) from exc

    def _home(self, obj: Resource) -> str:
        """Where the object's revisions go: its namespace, or the system namespace for Teams."""
        return obj.metadata.namespace or self.system_namespace

    def _path(self, res: CustomResource, namespace: str) -> tuple[Any, ...]:
        if res.namespaced:
            return (res.group, res.version, namespace, res.plural)
        return (res.group, res.version, res.plural)

    @staticmethod
    def _what(kind: str, namespace: str, name: str) -> str:
        return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"

    # -- objects -----------------------------------------------------------------------------------

    def create(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        res = self._resource(obj.kind)
        meta = obj.metadata
        body = to_document(obj, with_status=False)
        for field in _SERVER_META:
            body["metadata"].pop(field, None)
        fn = (
            self._custom.create_namespaced_custom_object
            if res.namespaced
            else self._custom.create_cluster_custom_object
        )
        what = self._what(obj.kind, meta.namespace, meta.name)
        created: dict[str, Any] = self._call(
            what, fn, *self._path(res, meta.namespace), body, dry_run="All" if dry_run else None
        )
        result = from_document(obj.kind, created)
        if obj.status != type(obj.status)():
            if dry_run:
                return result.model_copy(update={"status": obj.status.model_copy(deep=True)})
            created["status"] = to_document(obj)["status"]
            result = self._put_status(res, obj.kind, created)
        if not dry_run:
            self._call(what, history.write_revision, self._apps, result, self._home(result))
        return result

    def get(self, kind: str, namespace: str, name: str) -> Resource:
        res = self._resource(kind)
        fn = (
            self._custom.get_namespaced_custom_object
            if res.namespaced
            else self._custom.get_cluster_custom_object
        )
        doc = self._call(self._what(kind, namespace, name), fn, *self._path(res, namespace), name)
        return from_document(kind, doc)

    def list(
        self, kind: str, namespace: str | None = None, selector: Sequence[Requirement] = ()
    ) -> ListResult:
        res = self._resource(kind)
        label_selector = render_selector(selector)
        if res.namespaced and namespace is not None:
            fn: Callable[..., Any] = self._custom.list_namespaced_custom_object
            args: tuple[Any, ...] = (res.group, res.version, namespace, res.plural)
        else:
            fn = self._custom.list_cluster_custom_object
            args = (res.group, res.version, res.plural)
        listing = self._call(f"list {res.plural}", fn, *args, label_selector=label_selector)
        items = [from_document(kind, doc) for doc in listing.get("items") or []]
        if not res.namespaced and namespace:  # cluster-scoped objects live in no namespace
            items = []
        items.sort(key=lambda o: (o.metadata.namespace, o.metadata.name))
        return ListResult(items=items, resource_version=int(listing["metadata"]["resourceVersion"]))

    def _put(
        self, res: CustomResource, kind: str, doc: dict[str, Any], *, status: bool, dry_run: bool
    ) -> Resource:
        meta = doc["metadata"]
        namespace = meta.get("namespace", "")
        if status:
            fn: Callable[..., Any] = (
                self._custom.replace_namespaced_custom_object_status
                if res.namespaced
                else self._custom.replace_cluster_custom_object_status
            )
            kwargs: dict[str, Any] = {}
        else:
            fn = (
                self._custom.replace_namespaced_custom_object
                if res.namespaced
                else self._custom.replace_cluster_custom_object
            )
            kwargs = {"dry_run": "All" if dry_run else None}
        what = self._what(kind, namespace, meta["name"])
        return from_document(
            kind, self._call(what, fn, *self._path(res, namespace), meta["name"], doc, **kwargs)
        )

    def _put_status(self, res: CustomResource, kind: str, doc: dict[str, Any]) -> Resource:
        return self._put(res, kind, doc, status=True, dry_run=False)

    def _write(self, obj: Resource, *, status: bool, dry_run: bool) -> tuple[Resource, int | None]:
        """PUT ``obj`` (main or status); without a resourceVersion, read it and retry on conflicts.

        Returns the result and the generation the object had before the write, when known.
        """
        res = self._resource(obj.kind)
        doc = to_document(obj, with_status=status)
        if status and obj.status == type(obj.status)():
            doc.pop("status", None)  # a default status is no status: writing one would not be a no-op
        for field in ("generation", "creationTimestamp"):
            doc["metadata"].pop(field, None)
        if obj.metadata.resourceVersion is not None:
            return self._put(res, obj.kind, doc, status=status, dry_run=dry_run), obj.metadata.generation
        for _ in range(self.update_retries):
            current = self.get(obj.kind, obj.metadata.namespace, obj.metadata.name)
            if obj.metadata.uid is not None and obj.metadata.uid != current.metadata.uid:
                raise Conflict(
                    f"{self._what(obj.kind, obj.metadata.namespace, obj.metadata.name)}: uid precondition "
                    f"failed: the object was re-created (uid {current.metadata.uid}, not {obj.metadata.uid})"
                )
            doc["metadata"]["resourceVersion"] = current.metadata.resourceVersion
            try:
                return self._put(
                    res, obj.kind, doc, status=status, dry_run=dry_run
                ), current.metadata.generation
            except Conflict:
                continue
        raise Conflict(
            f"{self._what(obj.kind, obj.metadata.namespace, obj.metadata.name)}: still conflicting"
        )

    def update(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        result, before = self._write(obj, status=False, dry_run=dry_run)
        if not dry_run and result.metadata.generation != before:
            what = self._what(obj.kind, obj.metadata.namespace, obj.metadata.name)
            self._call(what, history.write_revision, self._apps, result, self._home(result))
        return result

    def update_status(self, obj: Resource) -> Resource:
        return self._write(obj, status=True, dry_run=False)[0]

    def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> Resource:
        res = self._resource(kind)
        options: dict[str, Any] = {"propagationPolicy": "Background"}
        if resource_version is not None:
            options["preconditions"] = {"resourceVersion": resource_version}
        fn = (
            self._custom.delete_namespaced_custom_object
            if res.namespaced
            else self._custom.delete_cluster_custom_object
        )
        what = self._what(kind, namespace, name)
        doc = self._call(what, fn, *self._path(res, namespace), name, body=options)
        result = from_document(kind, doc)
        if result.metadata.uid and not (doc.get("metadata") or {}).get("deletionTimestamp"):
            self._call(what, history.delete_history, self._apps, result.metadata.uid)
        return result

    def current_version(self) -> int:
        res = self._resource("ModelEndpoint")
        listing = self._call(
            "current version",
            self._custom.list_cluster_custom_object,
            res.group,
            res.version,
            res.plural,
            limit=1,
        )
        return int(listing["metadata"]["resourceVersion"])

    # -- watch -------------------------------------------------------------------------------------

    def watch(
        self, kind: str | None = None, since: int = 0, timeout: float | None = None
    ) -> Iterator[WatchEvent]:
        """Changes after ``since`` (``0``: from now, fixed when ``watch`` is called); see ``watching.py``.

        ``Expired`` comes from the iterator: Kubernetes reports it on the stream, not before it.
        """
        if since < 0:
            raise ValueError(f"since must not be negative (got {since})")
        kinds = [kind] if kind is not None else list(KINDS)
        resources = [self._resource(k) for k in kinds]
        start = since or self.current_version()
        return follow(self._custom, resources, start, timeout, self._closed.is_set, self.watch_poll_interval)

    # -- history and events ------------------------------------------------------------------------

    def history(self, uid: str) -> builtins.list[SpecRevision]:
        revisions: builtins.list[SpecRevision] = self._call("history", history.read_history, self._apps, uid)
        return revisions

    def record_event(
        self, obj: ObjectReference, type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        namespace = obj.namespace or self.system_namespace
        self._call(
            f"event for {obj.kind} {obj.name}",
            events.record,
            self._core,
            namespace,
            obj,
            type_,
            reason,
            message,
        )

    def list_events(
        self, obj: ObjectReference | None = None, namespace: str | None = None
    ) -> builtins.list[Event]:
        """Events oldest first (by last occurrence); for ``obj`` also those recorded without a uid."""
        if obj is not None:
            selector = f"involvedObject.kind={obj.kind},involvedObject.name={obj.name}"
            found = self._events(obj.namespace or self.system_namespace, selector)
            found = [
                e
                for e in found
                if (e.involved_object.namespace or "") == obj.namespace
                and (obj.uid is None or e.involved_object.uid in (None, "", obj.uid))
            ]
        elif namespace is not None:
            found = self._events(namespace or self.system_namespace, None)
            found = [e for e in found if (e.involved_object.namespace or "") == namespace]
        else:
            found = self._events(None, None)
        found.sort(key=events.order_key)
        return [events.to_event(item) for item in found]

    def _events(self, namespace: str | None, field_selector: str | None) -> builtins.list[Any]:
        if namespace is None:
            listing = self._call(
                "events", self._core.list_event_for_all_namespaces, field_selector=field_selector
            )
        else:
            listing = self._call(
                "events", self._core.list_namespaced_event, namespace, field_selector=field_selector
            )
        return [item for item in listing.items if events.ours(item)]

    def close(self) -> None:
        self._closed.set()
