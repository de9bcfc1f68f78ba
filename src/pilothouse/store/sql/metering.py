"""``SqlMeterStore``: the metering records (``pilothouse.store.metering``) in the embedded SQLite file.

It opens its own engine on the store's file (migrating it, like ``SqlStore``) so metering writes never
queue behind object writes on one Python lock; SQLite's write lock and ``busy_timeout`` order the two.
Every call is one short transaction. Reading a window loads the window's samples plus, per interval,
the last sample before the window (its value holds into the window, see ``pilothouse.cost.metering``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from types import TracebackType

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from pilothouse.store.metering import IntervalRecord, MeterReading, SampleRecord, TallyRecord
from pilothouse.store.sample_compaction import KEPT_PER_BUCKET, bucket_start, compact_samples
from pilothouse.store.sql.database import SqliteDatabase
from pilothouse.store.sql.schema import MeterIntervalRow, MeterSampleRow, MeterTallyRow


def _record(row: MeterIntervalRow) -> IntervalRecord:
    return IntervalRecord(
        id=row.id,
        kind=row.kind,
        namespace=row.namespace,
        name=row.name,
        pool=row.pool,
        requested={str(k): str(v) for k, v in row.requested.items()},
        start=row.started_at,
        end=row.ended_at,
        last_seen=row.last_seen_at,
        revision=row.revision,
        attempt=row.attempt,
        owner_uid=row.owner_uid,
    )


class SqlMeterStore:
    """The ``MeterStore`` contract on the embedded store's SQLite file; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db = SqliteDatabase(self.path, pool_size=2, max_overflow=4)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqlMeterStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _write(self) -> AbstractContextManager[Session]:
        return self._db.write()

    def _read(self) -> AbstractContextManager[Session]:
        return self._db.read()

    # -- writes ------------------------------------------------------------------------------------

    def open_interval(self, record: IntervalRecord) -> bool:
        with self._write() as session:
            if session.get(MeterIntervalRow, record.id) is not None:
                return False
            session.add(
                MeterIntervalRow(
                    id=record.id,
                    kind=record.kind,
                    namespace=record.namespace,
                    name=record.name,
                    owner_uid=record.owner_uid,
                    pool=record.pool,
                    revision=record.revision,
                    attempt=record.attempt,
                    requested=dict(record.requested),
                    started_at=record.start,
                    ended_at=record.end,
                    last_seen_at=record.last_seen or record.start,
                )
            )
            return True

    def close_interval(self, interval_id: str, end: datetime) -> None:
        with self._write() as session:
            row = session.get(MeterIntervalRow, interval_id)
            if row is None or row.ended_at is not None:
                return
            row.ended_at = max(end, row.started_at)

    def record(
        self,
        *,
        seen: Sequence[str] = (),
        at: datetime,
        samples: Sequence[SampleRecord] = (),
        tallies: Sequence[TallyRecord] = (),
    ) -> None:
        if not (seen or samples or tallies):
            return
        with self._write() as session:
            if seen:
                session.execute(
                    update(MeterIntervalRow)
                    .where(MeterIntervalRow.id.in_(list(seen)), MeterIntervalRow.ended_at.is_(None))
                    .values(last_seen_at=at)
                )
            session.add_all(
                MeterSampleRow(interval_id=s.interval_id, at=s.at, usage=dict(s.usage)) for s in samples
            )
            session.add_all(MeterTallyRow(interval_id=t.interval_id, at=t.at, count=t.count) for t in tallies)

    def compact(self, before: datetime) -> int:
        cutoff = bucket_start(before)
        removed = 0
        with self._write() as session:
            crowded = session.scalars(
                select(MeterSampleRow.interval_id)
                .where(MeterSampleRow.at < cutoff)
                .group_by(MeterSampleRow.interval_id)
                .having(func.count() > KEPT_PER_BUCKET)
                .order_by(MeterSampleRow.interval_id)
            ).all()
            for interval_id in crowded:
                old = session.scalars(
                    select(MeterSampleRow)
                    .where(MeterSampleRow.interval_id == interval_id, MeterSampleRow.at < cutoff)
                    .order_by(MeterSampleRow.at, MeterSampleRow.id)
                ).all()
                records = [SampleRecord(r.interval_id, r.at, dict(r.usage)) for r in old]
                kept = compact_samples(records)
                if len(kept) >= len(old):
                    continue
                session.execute(
                    delete(MeterSampleRow).where(
                        MeterSampleRow.interval_id == interval_id, MeterSampleRow.at < cutoff
                    )
                )
                session.add_all(
                    MeterSampleRow(interval_id=k.interval_id, at=k.at, usage=dict(k.usage)) for k in kept
                )
                removed += len(old) - len(kept)
        return removed

    # -- reads -------------------------------------------------------------------------------------

    def open_intervals(self) -> list[IntervalRecord]:
        with self._read() as session:
            rows = session.scalars(
                select(MeterIntervalRow)
                .where(MeterIntervalRow.ended_at.is_(None))
                .order_by(MeterIntervalRow.id)
            )
            return [_record(r) for r in rows]

    def read(self, start: datetime, end: datetime) -> list[MeterReading]:
        with self._read() as session:
            rows = list(
                session.scalars(
                    select(MeterIntervalRow)
                    .where(
                        MeterIntervalRow.started_at < end,
                        or_(MeterIntervalRow.ended_at.is_(None), MeterIntervalRow.ended_at >= start),
                    )
                    .order_by(MeterIntervalRow.started_at, MeterIntervalRow.id)
                )
            )
            ids = [r.id for r in rows]
            samples: dict[str, list[SampleRecord]] = {i: [] for i in ids}
            tallies: dict[str, list[TallyRecord]] = {i: [] for i in ids}
            for chunk in _chunks(ids):
                before = (
                    select(MeterSampleRow.interval_id, func.max(MeterSampleRow.at).label("at"))
                    .where(MeterSampleRow.interval_id.in_(chunk), MeterSampleRow.at < start)
                    .group_by(MeterSampleRow.interval_id)
                    .subquery()
                )
                last_before = select(MeterSampleRow).join(
                    before,
                    and_(
                        MeterSampleRow.interval_id == before.c.interval_id, MeterSampleRow.at == before.c.at
                    ),
                )
                inside = select(MeterSampleRow).where(
                    MeterSampleRow.interval_id.in_(chunk), MeterSampleRow.at >= start, MeterSampleRow.at < end
                )
                for query in (last_before, inside):
                    for s in session.scalars(query):
                        samples[s.interval_id].append(
                            SampleRecord(s.interval_id, s.at, {str(k): str(v) for k, v in s.usage.items()})
                        )
                for t in session.scalars(
                    select(MeterTallyRow).where(
                        MeterTallyRow.interval_id.in_(chunk),
                        MeterTallyRow.at >= start,
                        MeterTallyRow.at < end,
                    )
                ):
                    tallies[t.interval_id].append(TallyRecord(t.interval_id, t.at, t.count))
            return [
                MeterReading(
                    _record(r),
                    tuple(sorted(samples[r.id], key=lambda s: s.at)),
                    tuple(sorted(tallies[r.id], key=lambda t: t.at)),
                )
                for r in rows
            ]


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    """SQLite limits bound parameters per statement; read in chunks."""
    for i in range(0, len(ids), size):
        yield ids[i : i + size]
