"""``DeletingHidden``: the store as the reconcilers should see it while kopf holds a finalizer.

With a finalizer, a deleted custom resource stays readable (with a ``deletionTimestamp``) until the
operator lets go. The reconcilers clean up when an object is *gone* (``NotFound`` on ``get``, absent from
``list``), so this view hides the objects kopf is deleting: the delete handler marks the uid, the
reconcilers run their own cleanup path, and kopf removes the finalizer once it returns.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator, Sequence
from typing import Literal

from pilothouse.api.event import Event, ObjectReference
from pilothouse.api.registry import Resource
from pilothouse.api.selectors import Requirement
from pilothouse.store.protocol import ListResult, NotFound, SpecRevision, Store, WatchEvent


class DeletingHidden:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._deleting: set[str] = set()
        self._lock = threading.Lock()

    def hide(self, uid: str) -> None:
        with self._lock:
            self._deleting.add(uid)

    def hidden(self, obj: Resource) -> bool:
        with self._lock:
            return obj.metadata.uid in self._deleting

    def create(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        return self.store.create(obj, dry_run=dry_run)

    def get(self, kind: str, namespace: str, name: str) -> Resource:
        obj = self.store.get(kind, namespace, name)
        if self.hidden(obj):
            raise NotFound(f"{kind} {namespace}/{name} is being deleted")
        return obj

    def list(
        self, kind: str, namespace: str | None = None, selector: Sequence[Requirement] = ()
    ) -> ListResult:
        result = self.store.list(kind, namespace, selector)
        items = [o for o in result.items if not self.hidden(o)]
        return ListResult(items=items, resource_version=result.resource_version)

    def update(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        return self.store.update(obj, dry_run=dry_run)

    def update_status(self, obj: Resource) -> Resource:
        return self.store.update_status(obj)

    def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> Resource:
        return self.store.delete(kind, namespace, name, resource_version=resource_version)

    def watch(
        self, kind: str | None = None, since: int = 0, timeout: float | None = None
    ) -> Iterator[WatchEvent]:
        return self.store.watch(kind, since, timeout)

    def current_version(self) -> int:
        return self.store.current_version()

    def history(self, uid: str) -> builtins.list[SpecRevision]:
        return self.store.history(uid)

    def record_event(
        self, obj: ObjectReference, type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        self.store.record_event(obj, type_, reason, message)

    def list_events(
        self, obj: ObjectReference | None = None, namespace: str | None = None
    ) -> builtins.list[Event]:
        return self.store.list_events(obj, namespace)

    def close(self) -> None:
        self.store.close()
