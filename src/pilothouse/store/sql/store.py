"""``SqlStore``: the embedded backend of the Store contract, one SQLite file per control plane.

Kubernetes semantics over SQLite: every write takes one short ``BEGIN IMMEDIATE`` transaction (behind
an in-process lock, so threads queue on a mutex instead of on SQLite's busy handler), bumps the
store-wide resourceVersion in ``counters``, and appends the resulting object to the ``changes`` log that
watches replay. Reads run concurrently under WAL snapshots; a ``list`` reads its items and its
resourceVersion in one snapshot, so "list, then watch from its version" misses nothing.

Choices where the contract leaves room:

- An ``update`` or ``update_status`` that changes nothing writes nothing: the stored object comes back
  with its resourceVersion unchanged (Kubernetes does the same). Preconditions are still checked.
- ``update`` and ``delete`` also refuse a ``metadata.uid`` that differs from the stored one (the object
  was deleted and re-created since it was read), as Kubernetes' uid precondition does.
- ``dry_run`` runs every check and returns the would-be object; a dry-run create has a uid but no
  resourceVersion, a dry-run update keeps the stored resourceVersion.
- ``watch(since=0)`` replays nothing and follows changes from the moment ``watch`` is called; ``since>0``
  replays the log after that version. The watch's start is fixed when ``watch`` is called, not when
  the generator is first advanced.
- A deleted object's spec revisions go with it (foreign key, ``ON DELETE CASCADE``); events stay.
- Events do not bump resourceVersion: they are not watched objects.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from pilothouse.api.event import Event, ObjectReference
from pilothouse.api.meta import utcnow
from pilothouse.api.registry import KINDS, Resource
from pilothouse.api.selectors import Requirement, matches
from pilothouse.store.protocol import (
    AlreadyExists,
    Conflict,
    Expired,
    ListResult,
    NotFound,
    SpecRevision,
    WatchEvent,
    WatchEventType,
)
from pilothouse.store.sql import codec
from pilothouse.store.sql.database import SqliteDatabase
from pilothouse.store.sql.schema import (
    PRUNED_THROUGH,
    RESOURCE_VERSION,
    ChangeRow,
    CounterRow,
    EventRow,
    ObjectRow,
    SpecRevisionRow,
)
from pilothouse.store.sql.watch import Notifier, follow

WATCH_BATCH = 256
"""Changes read from the log per query while a watch catches up."""


def _key(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}"


class SqlStore:
    """The Store contract on one SQLite file; thread-safe, one instance per process and file."""

    def __init__(self, path: Path, *, retain_changes: int = 10_000) -> None:
        if retain_changes < 1:
            raise ValueError(f"retain_changes must be at least 1 (got {retain_changes})")
        self.path = Path(path)
        self.retain_changes = retain_changes
        self._db = SqliteDatabase(self.path)
        self._notifier = Notifier()

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every watch and close the database; idempotent."""
        self._notifier.close()
        self._db.close()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """One snapshot: every query inside sees the same committed state."""
        with self._db.read() as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One short write transaction; watchers are woken after it commits."""
        with self._db.write(expire_on_commit=False) as session:
            yield session
        self._notifier.notify()

    @staticmethod
    def _counter(session: Session, name: str) -> int:
        return session.execute(select(CounterRow.value).where(CounterRow.name == name)).scalar_one()

    def _bump(self, session: Session) -> int:
        rv: int = session.execute(
            update(CounterRow)
            .where(CounterRow.name == RESOURCE_VERSION)
            .values(value=CounterRow.value + 1)
            .returning(CounterRow.value)
        ).scalar_one()
        return rv

    def _log(self, session: Session, rv: int, type_: WatchEventType, obj: Resource) -> None:
        meta = obj.metadata
        session.add(
            ChangeRow(
                resource_version=rv,
                kind=obj.kind,
                namespace=meta.namespace,
                name=meta.name,
                type=type_,
                object=codec.dump(obj),
            )
        )
        horizon = rv - self.retain_changes
        if horizon > 0:
            session.execute(delete(ChangeRow).where(ChangeRow.resource_version <= horizon))
            session.execute(
                update(CounterRow)
                .where(CounterRow.name == PRUNED_THROUGH)
                .values(value=func.max(CounterRow.value, horizon))
            )

    # -- rows --------------------------------------------------------------------------------------

    @staticmethod
    def _find(session: Session, kind: str, namespace: str, name: str) -> ObjectRow | None:
        return session.execute(
            select(ObjectRow).where(
                ObjectRow.kind == kind, ObjectRow.namespace == namespace, ObjectRow.name == name
            )
        ).scalar_one_or_none()

    def _require(self, session: Session, kind: str, namespace: str, name: str) -> ObjectRow:
        row = self._find(session, kind, namespace, name)
        if row is None:
            raise NotFound(f"{_key(kind, namespace, name)} not found")
        return row

    @staticmethod
    def _to_resource(row: ObjectRow, *, resource_version: int | None = None) -> Resource:
        return codec.assemble(
            row.kind,
            row.body,
            row.status,
            uid=row.uid,
            resource_version=row.resource_version if resource_version is None else resource_version,
            generation=row.generation,
            creation_timestamp=row.creation_timestamp,
        )

    @staticmethod
    def _check(row: ObjectRow, resource_version: str | None, uid: str | None) -> None:
        """The optimistic-concurrency preconditions: same object (uid), same version (resourceVersion)."""
        key = _key(row.kind, row.namespace, row.name)
        if uid is not None and uid != row.uid:
            raise Conflict(
                f"{key}: uid precondition failed: the object was re-created (uid {row.uid}, not {uid})"
            )
        if resource_version is None:
            return
        if resource_version != str(row.resource_version):
            raise Conflict(
                f"{key} has been modified: resourceVersion is {row.resource_version}, "
                f"not {resource_version}; read it again and reapply your change"
            )

    @staticmethod
    def _kind(kind: str) -> None:
        if kind not in KINDS:
            raise NotFound(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")

    # -- objects -----------------------------------------------------------------------------------

    def create(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        self._kind(obj.kind)
        meta = obj.metadata
        body, status = codec.split(obj)
        now = utcnow()
        uid = str(uuid.uuid4())
        exists = AlreadyExists(f"{_key(obj.kind, meta.namespace, meta.name)} already exists")
        if dry_run:
            with self._read() as session:
                if self._find(session, obj.kind, meta.namespace, meta.name) is not None:
                    raise exists
            return codec.assemble(
                obj.kind, body, status, uid=uid, resource_version=None, generation=1, creation_timestamp=now
            )
        with self._write() as session:
            if self._find(session, obj.kind, meta.namespace, meta.name) is not None:
                raise exists
            rv = self._bump(session)
            row = ObjectRow(
                kind=obj.kind,
                namespace=meta.namespace,
                name=meta.name,
                uid=uid,
                resource_version=rv,
                generation=1,
                creation_timestamp=now,
                body=body,
                status=status,
            )
            session.add(row)
            session.flush()
            session.add(SpecRevisionRow(uid=uid, generation=1, spec=body["spec"], created=now))
            result = self._to_resource(row)
            self._log(session, rv, "ADDED", result)
        return result

    def get(self, kind: str, namespace: str, name: str) -> Resource:
        self._kind(kind)
        with self._read() as session:
            return self._to_resource(self._require(session, kind, namespace, name))

    def list(
        self, kind: str, namespace: str | None = None, selector: Sequence[Requirement] = ()
    ) -> ListResult:
        self._kind(kind)
        wanted = tuple(selector)
        query = select(ObjectRow).where(ObjectRow.kind == kind)
        if namespace is not None:
            query = query.where(ObjectRow.namespace == namespace)
        with self._read() as session:
            rv = self._counter(session, RESOURCE_VERSION)
            rows = session.execute(query.order_by(ObjectRow.namespace, ObjectRow.name)).scalars().all()
            items = [
                self._to_resource(row)
                for row in rows
                if matches(wanted, row.body["metadata"].get("labels", {}))
            ]
        return ListResult(items=items, resource_version=rv)

    def update(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        self._kind(obj.kind)
        meta = obj.metadata
        body, _ = codec.split(obj)
        with self._read() if dry_run else self._write() as session:
            row = self._require(session, obj.kind, meta.namespace, meta.name)
            self._check(row, meta.resourceVersion, meta.uid)
            if codec.canonical(body) == codec.canonical(row.body):
                return self._to_resource(row)  # a no-op writes nothing
            spec_changed = codec.canonical(body["spec"]) != codec.canonical(row.body["spec"])
            generation = row.generation + 1 if spec_changed else row.generation
            if dry_run:
                return codec.assemble(
                    row.kind,
                    body,
                    row.status,
                    uid=row.uid,
                    resource_version=row.resource_version,
                    generation=generation,
                    creation_timestamp=row.creation_timestamp,
                )
            rv = self._bump(session)
            row.body = body
            row.generation = generation
            row.resource_version = rv
            if spec_changed:
                session.add(
                    SpecRevisionRow(uid=row.uid, generation=generation, spec=body["spec"], created=utcnow())
                )
            result = self._to_resource(row)
            self._log(session, rv, "MODIFIED", result)
        return result

    def update_status(self, obj: Resource) -> Resource:
        self._kind(obj.kind)
        meta = obj.metadata
        _, status = codec.split(obj)
        with self._write() as session:
            row = self._require(session, obj.kind, meta.namespace, meta.name)
            self._check(row, meta.resourceVersion, meta.uid)
            if codec.canonical(status) == codec.canonical(row.status):
                return self._to_resource(row)  # a no-op writes nothing
            rv = self._bump(session)
            row.status = status
            row.resource_version = rv
            result = self._to_resource(row)
            self._log(session, rv, "MODIFIED", result)
        return result

    def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> Resource:
        self._kind(kind)
        with self._write() as session:
            row = self._require(session, kind, namespace, name)
            self._check(row, resource_version, None)
            rv = self._bump(session)
            # As in Kubernetes, the last state carries the resourceVersion of the deletion.
            result = self._to_resource(row, resource_version=rv)
            session.delete(row)
            self._log(session, rv, "DELETED", result)
        return result

    def current_version(self) -> int:
        with self._read() as session:
            return self._counter(session, RESOURCE_VERSION)

    # -- watch -------------------------------------------------------------------------------------

    def watch(
        self, kind: str | None = None, since: int = 0, timeout: float | None = None
    ) -> Iterator[WatchEvent]:
        """Changes after ``since`` in order, then new ones; ``since=0`` means only changes from now on.

        ``Expired`` is raised here (before any event) when ``since`` is older than the retained log, and
        from the iterator if the watcher falls that far behind while following.
        """
        if since < 0:
            raise ValueError(f"since must not be negative (got {since})")
        if kind is not None:
            self._kind(kind)
        with self._read() as session:
            start = since or self._counter(session, RESOURCE_VERSION)
            self._check_retained(session, start)

        def fetch(last: int) -> tuple[builtins.list[WatchEvent], int]:
            query = select(ChangeRow).where(ChangeRow.resource_version > last)
            if kind is not None:
                query = query.where(ChangeRow.kind == kind)
            with self._read() as session:
                self._check_retained(session, last)
                head = self._counter(session, RESOURCE_VERSION)
                rows = session.execute(
                    query.order_by(ChangeRow.resource_version).limit(WATCH_BATCH)
                ).scalars()
                events = [
                    WatchEvent(
                        type=_event_type(row.type),
                        object=codec.load(row.kind, row.object),
                        resource_version=row.resource_version,
                    )
                    for row in rows
                ]
            return events, head

        return follow(fetch, self._notifier, start, timeout)

    def _check_retained(self, session: Session, since: int) -> None:
        pruned = self._counter(session, PRUNED_THROUGH)
        if since < pruned:
            raise Expired(
                f"resourceVersion {since} is too old: changes up to {pruned} are no longer kept; "
                "list again and watch from the list's resourceVersion"
            )

    # -- history and events ------------------------------------------------------------------------

    def history(self, uid: str) -> builtins.list[SpecRevision]:
        with self._read() as session:
            rows = session.execute(
                select(SpecRevisionRow).where(SpecRevisionRow.uid == uid).order_by(SpecRevisionRow.generation)
            ).scalars()
            return [
                SpecRevision(uid=r.uid, generation=r.generation, spec=r.spec, created=r.created) for r in rows
            ]

    def record_event(
        self, obj: ObjectReference, type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        now = datetime.now(UTC)  # full precision: events of one second must still order correctly
        query = (
            select(EventRow)
            .where(
                EventRow.kind == obj.kind,
                EventRow.namespace == obj.namespace,
                EventRow.name == obj.name,
                EventRow.uid.is_(None) if obj.uid is None else EventRow.uid == obj.uid,
                EventRow.reason == reason,
                EventRow.message == message,
            )
            .order_by(EventRow.id.desc())
            .limit(1)
        )
        with self._db.write() as session:
            row = session.execute(query).scalar_one_or_none()
            if row is not None:
                row.count += 1
                row.last_timestamp = now
                row.type = type_
                return
            session.add(
                EventRow(
                    kind=obj.kind,
                    namespace=obj.namespace,
                    name=obj.name,
                    uid=obj.uid,
                    type=type_,
                    reason=reason,
                    message=message,
                    count=1,
                    first_timestamp=now,
                    last_timestamp=now,
                    source="pilothouse",
                )
            )

    def list_events(
        self, obj: ObjectReference | None = None, namespace: str | None = None
    ) -> builtins.list[Event]:
        """Events oldest first (by last occurrence); for ``obj`` also those recorded without a uid."""
        query = select(EventRow)
        if obj is not None:
            query = query.where(
                EventRow.kind == obj.kind, EventRow.namespace == obj.namespace, EventRow.name == obj.name
            )
            if obj.uid is not None:
                query = query.where((EventRow.uid == obj.uid) | EventRow.uid.is_(None))
        elif namespace is not None:
            query = query.where(EventRow.namespace == namespace)
        with self._read() as session:
            rows = session.execute(query.order_by(EventRow.last_timestamp, EventRow.id)).scalars()
            return [_to_event(row) for row in rows]


def _event_type(value: str) -> WatchEventType:
    if value == "ADDED":
        return "ADDED"
    if value == "MODIFIED":
        return "MODIFIED"
    if value == "DELETED":
        return "DELETED"
    raise ValueError(f"corrupt change log: unknown change type {value!r}")


def _to_event(row: EventRow) -> Event:
    type_: Any = row.type
    return Event(
        involvedObject=ObjectReference(kind=row.kind, namespace=row.namespace, name=row.name, uid=row.uid),
        type=type_,
        reason=row.reason,
        message=row.message,
        count=row.count,
        firstTimestamp=row.first_timestamp,
        lastTimestamp=row.last_timestamp,
        source=row.source,
    )
