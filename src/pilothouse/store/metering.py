"""The metering store contract: what ran, from when to when, asking for what, and what it used.

The metering controller writes here and the cost API reads here. Records are plain data in the
store's own vocabulary (strings and decimal strings), not ``pilothouse.cost`` types: the store layer
sits beside the cost core, not above it, and the controllers translate (``controllers.costing``).

* An **interval** is one replica or one job worker holding resources, keyed by a stable ``id`` (the
  metering controller derives it from the owner uid and the replica or worker). ``end`` None means
  it is still open. ``last_seen`` is the last time the controller saw it alive: when it is found gone
  after a control-plane restart, it is closed near that time, not at the restart.
* ``kind`` is ``ModelEndpoint`` or ``Job`` for workloads, or ``Pool`` for a stretch of time the
  metering controller ran on a pool, with the pool's capacity as ``requested``: idle capacity is
  charged only for time the platform was actually up.
* **Samples** (usage readings, metric name -> decimal string) and **tallies** (requests completed in
  the period ending at ``at``) belong to one interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

POOL_KIND = "Pool"
"""``IntervalRecord.kind`` of a pool-coverage interval (the platform up on that pool)."""


@dataclass(frozen=True)
class IntervalRecord:
    id: str
    kind: str
    """``ModelEndpoint``, ``Job`` or ``Pool``."""
    namespace: str
    name: str
    pool: str
    requested: Mapping[str, str]
    """Resource name -> amount as a decimal string: ``cpu`` (cores), ``memory`` (bytes), accelerators."""
    start: datetime
    end: datetime | None = None
    last_seen: datetime | None = None
    revision: int | None = None
    attempt: int | None = None
    owner_uid: str = ""


@dataclass(frozen=True)
class SampleRecord:
    interval_id: str
    at: datetime
    usage: Mapping[str, str]
    """``cpu_cores``, ``memory_bytes``, ``gpu_utilization`` (percent), ``gpu_memory_bytes``; absent = unmeasured."""


@dataclass(frozen=True)
class TallyRecord:
    interval_id: str
    at: datetime
    count: int


@dataclass(frozen=True)
class MeterReading:
    """One interval with its samples and tallies as needed for a window (see ``MeterStore.read``)."""

    interval: IntervalRecord
    samples: tuple[SampleRecord, ...] = ()
    tallies: tuple[TallyRecord, ...] = field(default=())


class MeterStore(Protocol):
    """Durable metering records. Thread-safe; every method is one short transaction."""

    def open_interval(self, record: IntervalRecord) -> bool:
        """Store a new interval; an ``id`` that already exists is left as it is (returns False)."""
        ...

    def close_interval(self, interval_id: str, end: datetime) -> None:
        """Set ``end`` of an open interval; unknown or already closed ids are ignored."""
        ...

    def open_intervals(self) -> list[IntervalRecord]: ...

    def record(
        self,
        *,
        seen: Sequence[str] = (),
        at: datetime,
        samples: Sequence[SampleRecord] = (),
        tallies: Sequence[TallyRecord] = (),
    ) -> None:
        """One metering pass: mark the ``seen`` intervals alive at ``at``, add samples and tallies."""
        ...

    def compact(self, before: datetime) -> int:
        """Compact the usage samples of the whole hours before ``before`` (``store.sample_compaction``:
        at most three per hour, interval and metric, integrals kept); returns how many rows went."""
        ...

    def read(self, start: datetime, end: datetime) -> list[MeterReading]:
        """Intervals overlapping ``[start, end)``, with their samples inside it plus the last one before
        ``start`` (its value holds into the window), and their tallies inside it."""
        ...

    def close(self) -> None: ...
