"""The Store contract: Kubernetes API semantics over any backend.

The semantics are the ones users and controllers already rely on with Kubernetes:

- ``resourceVersion`` is a store-wide, monotonically increasing version; every write bumps it.
  ``update`` and ``update_status`` refuse a stale version with ``Conflict`` (optimistic concurrency), so a
  controller acting on old state loses the race instead of overwriting newer intent.
- ``generation`` bumps only when the spec changes; ``status.observedGeneration`` says which spec a
  controller has acted on.
- ``update`` never changes status and ``update_status`` never changes spec or metadata: users own the
  spec, controllers own the status.
- ``watch(since)`` replays every change after a resourceVersion, then follows new ones; a watcher that
  falls behind the retained log gets ``Expired`` and must re-list (the Kubernetes "410 Gone").
- Every spec generation is kept as a ``SpecRevision`` (rollouts and ``rollout undo`` need them).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pilothouse.api.event import Event, ObjectReference
from pilothouse.api.registry import Resource
from pilothouse.api.selectors import Requirement


class StoreError(Exception):
    """Base of the errors a store raises; each maps to one HTTP status."""

    status_code = 500


class NotFound(StoreError):
    status_code = 404


class AlreadyExists(StoreError):
    status_code = 409


class Conflict(StoreError):
    """The object changed since it was read (stale ``resourceVersion``)."""

    status_code = 409


class Expired(StoreError):
    """A watch asked for a resourceVersion older than the retained change log; re-list and watch again."""

    status_code = 410


class StoreLocked(StoreError):
    """Another control plane already owns this store (for example a second ``up`` on one data dir)."""

    status_code = 423


WatchEventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class WatchEvent:
    type: WatchEventType
    object: Resource
    resource_version: int


@dataclass(frozen=True)
class ListResult:
    items: list[Resource]
    resource_version: int
    """The store's version at the time of the list: watch from here to miss nothing."""


@dataclass(frozen=True)
class SpecRevision:
    """The spec of one generation of an object, kept for rollouts and ``rollout history``."""

    uid: str
    generation: int
    spec: dict[str, Any]
    created: datetime


class Store(Protocol):
    """Objects keyed by (kind, namespace, name). All methods are thread-safe and synchronous."""

    def create(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        """Store a new object; sets uid, resourceVersion, generation=1, creationTimestamp.

        Status given on create is kept (controllers may pre-set it); raises ``AlreadyExists``.
        """
        ...

    def get(self, kind: str, namespace: str, name: str) -> Resource: ...

    def list(
        self, kind: str, namespace: str | None = None, selector: Sequence[Requirement] = ()
    ) -> ListResult: ...

    def update(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        """Replace metadata (labels, annotations) and spec; status is left as stored.

        ``obj.metadata.resourceVersion`` must match the stored one (``None`` means "last writer wins");
        raises ``Conflict`` or ``NotFound``. Bumps generation only when the spec differs.
        """
        ...

    def update_status(self, obj: Resource) -> Resource:
        """Replace the status only; same resourceVersion rule as ``update``."""
        ...

    def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> Resource:
        """Remove the object and return its last state; raises ``NotFound`` or ``Conflict``."""
        ...

    def watch(
        self, kind: str | None = None, since: int = 0, timeout: float | None = None
    ) -> Iterator[WatchEvent]:
        """Yield changes after ``since`` in order; stop after ``timeout`` seconds with no change."""
        ...

    def current_version(self) -> int: ...

    def history(self, uid: str) -> builtins.list[SpecRevision]:
        """Every spec generation of one object, oldest first."""
        ...

    def record_event(
        self, obj: ObjectReference, type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        """Add an event, folding it into the last one with the same object, reason and message."""
        ...

    def list_events(
        self, obj: ObjectReference | None = None, namespace: str | None = None
    ) -> builtins.list[Event]: ...

    def close(self) -> None: ...
