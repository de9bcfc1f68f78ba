"""``SqlMeterStore``: intervals keyed by a stable id, samples and tallies, and window reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pilothouse.store.metering import IntervalRecord, SampleRecord, TallyRecord
from pilothouse.store.sql import SqlMeterStore, SqlStore

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def interval(interval_id: str, start: float = 0, **kw: object) -> IntervalRecord:
    return IntervalRecord(
        id=interval_id,
        kind="ModelEndpoint",
        namespace="nlp",
        name="chat",
        pool="local",
        requested={"cpu": "2", "memory": "1073741824", "nvidia.com/gpu": "0.5"},
        start=at(start),
        revision=1,
        owner_uid="u1",
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def meters(tmp_path: Path) -> Iterator[SqlMeterStore]:
    with SqlMeterStore(tmp_path / "store.db") as store:
        yield store


def test_open_is_idempotent_and_close_sets_the_end_once(meters: SqlMeterStore) -> None:
    assert meters.open_interval(interval("a"))
    assert not meters.open_interval(interval("a", start=50))
    [record] = meters.open_intervals()
    assert record.start == at(0) and record.last_seen == at(0) and record.requested["nvidia.com/gpu"] == "0.5"
    meters.close_interval("a", at(30))
    meters.close_interval("a", at(99))  # already closed: ignored
    meters.close_interval("nope", at(1))  # unknown: ignored
    assert meters.open_intervals() == []
    [reading] = meters.read(at(0), at(100))
    assert reading.interval.end == at(30)


def test_record_marks_seen_and_read_clips_samples_and_tallies_to_the_window(meters: SqlMeterStore) -> None:
    meters.open_interval(interval("a"))
    meters.open_interval(interval("old", start=-100))
    meters.close_interval("old", at(-50))
    for t in (0, 10, 20, 30):
        meters.record(
            seen=["a"],
            at=at(t),
            samples=[SampleRecord("a", at(t), {"cpu_cores": str(t), "memory_bytes": "5"})],
            tallies=[TallyRecord("a", at(t), t + 1)],
        )
    assert meters.open_intervals()[0].last_seen == at(30)
    [reading] = meters.read(at(15), at(25))  # "old" ended before the window
    # The last sample before the window comes along: its value holds into the window.
    assert [(s.at, s.usage["cpu_cores"]) for s in reading.samples] == [(at(10), "10"), (at(20), "20")]
    assert [(t.at, t.count) for t in reading.tallies] == [(at(20), 21)]


def test_metering_survives_reopening_and_shares_the_file_with_the_object_store(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with SqlStore(path), SqlMeterStore(path) as meters:
        meters.open_interval(interval("a"))
    with SqlMeterStore(path) as meters:
        assert [r.id for r in meters.open_intervals()] == ["a"]
