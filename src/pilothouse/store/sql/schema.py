"""The tables of the embedded store, as typed SQLAlchemy models.

This metadata is the single description of the schema that code reads and writes; the Alembic revisions
in ``migrations/`` must produce exactly it (a test compares them), so the two cannot drift apart.

Objects keep their server-set fields (uid, resourceVersion, generation, creationTimestamp) as columns, not
inside the JSON: the store owns them, and columns are what the unique and foreign keys need. ``changes``
is the watch log, ``spec_revisions`` the per-generation spec history rollouts need, ``counters`` the
store-wide resourceVersion (a counter row survives pruning of the log, ``max(changes.rv)`` would not).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

RESOURCE_VERSION = "resource_version"
"""The ``counters`` row holding the last resourceVersion handed out."""
PRUNED_THROUGH = "pruned_through"
"""The ``counters`` row holding the newest resourceVersion pruned from ``changes`` (0: none yet)."""


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes; SQLite stores naive ones, so normalise on the way in and out."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ObjectRow(Base):
    """The current state of one object; ``body`` is everything but the server-set fields and status."""

    __tablename__ = "objects"
    __table_args__ = (UniqueConstraint("kind", "namespace", "name", name="uq_objects_kind_namespace_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(63))
    namespace: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(63))
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    resource_version: Mapped[int] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(Integer)
    creation_timestamp: Mapped[datetime]
    body: Mapped[dict[str, Any]]
    status: Mapped[dict[str, Any]]


class ChangeRow(Base):
    """One entry of the watch log: the full object as it was after the write (before it, for DELETED)."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_kind_rv", "kind", "resource_version"),)

    resource_version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(63))
    namespace: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(63))
    type: Mapped[str] = mapped_column(String(8))
    object: Mapped[dict[str, Any]]


class SpecRevisionRow(Base):
    """The spec of one generation; goes with its object (``ON DELETE CASCADE``)."""

    __tablename__ = "spec_revisions"

    uid: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("objects.uid", ondelete="CASCADE", name="fk_spec_revisions_uid"),
        primary_key=True,
    )
    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    spec: Mapped[dict[str, Any]]
    created: Mapped[datetime]


class EventRow(Base):
    """One (possibly folded) event; events are not watched, so they do not bump resourceVersion."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_object", "kind", "namespace", "name"),
        Index("ix_events_last_timestamp", "last_timestamp"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(63))
    namespace: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(63))
    uid: Mapped[str | None] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer)
    first_timestamp: Mapped[datetime]
    last_timestamp: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(63))


class CounterRow(Base):
    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


# -- metering (revision 0002): see pilothouse.store.metering --------------------------------------------


class MeterIntervalRow(Base):
    """One replica, job worker or pool-coverage stretch; ``ended_at`` NULL while open."""

    __tablename__ = "meter_intervals"
    __table_args__ = (
        Index("ix_meter_intervals_ended_at", "ended_at"),
        Index("ix_meter_intervals_started_at", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    kind: Mapped[str] = mapped_column(String(63))
    namespace: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(63))
    owner_uid: Mapped[str] = mapped_column(String(36))
    pool: Mapped[str] = mapped_column(String(63))
    revision: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int | None] = mapped_column(Integer)
    requested: Mapped[dict[str, Any]]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime]


class MeterSampleRow(Base):
    """One usage reading of an interval (metric -> decimal string)."""

    __tablename__ = "meter_samples"
    __table_args__ = (Index("ix_meter_samples_interval_at", "interval_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    interval_id: Mapped[str] = mapped_column(
        String(160), ForeignKey("meter_intervals.id", ondelete="CASCADE", name="fk_meter_samples_interval")
    )
    at: Mapped[datetime]
    usage: Mapped[dict[str, Any]]


class MeterTallyRow(Base):
    """Requests an interval's revision completed in the period ending at ``at``."""

    __tablename__ = "meter_tallies"
    __table_args__ = (Index("ix_meter_tallies_interval_at", "interval_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    interval_id: Mapped[str] = mapped_column(
        String(160), ForeignKey("meter_intervals.id", ondelete="CASCADE", name="fk_meter_tallies_interval")
    )
    at: Mapped[datetime]
    count: Mapped[int] = mapped_column(Integer)
