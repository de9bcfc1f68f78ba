"""Compacting old usage samples keeps what cost reads from them: the integral of each metric's step
function over any span that starts and ends on hour boundaries (and everything outside each hour's
averaged stretch), while storing three samples per hour instead of hundreds."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pilothouse.cost.metering import integrate
from pilothouse.cost.windows import Window
from pilothouse.store.metering import IntervalRecord, SampleRecord
from pilothouse.store.sample_compaction import compact_samples
from pilothouse.store.sql import SqlMeterStore

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
METRICS = ("cpu_cores", "memory_bytes", "gpu_utilization")


def readings(hours: int, every: int = 10, seed: int = 3, start: float = 7.0) -> list[SampleRecord]:
    """A replica sampled every ``every`` s for ``hours`` h; GPU utilization missing from some samples."""
    rnd = random.Random(seed)
    out = []
    seconds = start
    while seconds < hours * 3600:
        usage = {"cpu_cores": f"{rnd.randint(0, 400) / 100}", "memory_bytes": str(rnd.randint(1, 2**31))}
        if rnd.random() < 0.8:
            usage["gpu_utilization"] = str(rnd.randint(0, 100))
        out.append(SampleRecord("r1", T0 + timedelta(seconds=seconds), usage))
        seconds += every
    return out


def integral(samples: list[SampleRecord], metric: str, start: datetime, end: datetime) -> Decimal | None:
    points = [(s.at, Decimal(s.usage[metric])) for s in samples if metric in s.usage]
    return integrate(points, Window(start, end))


def test_three_samples_per_hour_and_metric_keep_every_hour_aligned_integral() -> None:
    raw = readings(hours=3)
    kept = compact_samples(raw)
    assert len(raw) > 1000 and len(kept) <= 3 * 3 * len(METRICS)
    hours = [T0 + timedelta(hours=h) for h in range(4)]
    spans = [(a, b) for i, a in enumerate(hours) for b in hours[i + 1 :]]
    spans.append((T0 - timedelta(hours=1), T0 + timedelta(hours=5)))  # beyond both ends
    for metric in METRICS:
        for a, b in spans:
            before, after = integral(raw, metric, a, b), integral(kept, metric, a, b)
            assert before is not None and after is not None
            assert after == pytest.approx(before, rel=Decimal("1e-20")), (metric, a, b)


def test_compaction_is_idempotent_and_leaves_sparse_hours_alone() -> None:
    once = compact_samples(readings(hours=2))
    assert compact_samples(once) == once
    sparse = readings(hours=1, every=1200)  # three samples in the hour: nothing to gain
    assert compact_samples(sparse) == sparse


def test_samples_of_several_intervals_are_refused() -> None:
    a, b = SampleRecord("a", T0, {"cpu_cores": "1"}), SampleRecord("b", T0, {"cpu_cores": "1"})
    with pytest.raises(ValueError, match="one interval"):
        compact_samples([a, b])


@pytest.fixture
def meters(tmp_path: Path) -> Iterator[SqlMeterStore]:
    with SqlMeterStore(tmp_path / "store.db") as store:
        store.open_interval(
            IntervalRecord("r1", "ModelEndpoint", "nlp", "chat", "local", {"cpu": "2"}, T0, revision=1)
        )
        yield store


def test_the_store_compacts_whole_hours_before_the_cutoff_and_keeps_the_rest(meters: SqlMeterStore) -> None:
    raw = readings(hours=3)
    meters.record(at=T0 + timedelta(hours=3), samples=raw)
    removed = meters.compact(T0 + timedelta(hours=2, minutes=30))  # hours 0 and 1; hour 2 is not whole
    [reading] = meters.read(T0, T0 + timedelta(hours=3))
    stored = list(reading.samples)
    recent = [s for s in raw if s.at >= T0 + timedelta(hours=2)]
    assert removed == len(raw) - len(stored)
    assert [s for s in stored if s.at >= T0 + timedelta(hours=2)] == recent
    assert len([s for s in stored if s.at < T0 + timedelta(hours=2)]) <= 2 * 3 * len(METRICS)
    for metric in METRICS:
        before = integral(raw, metric, T0, T0 + timedelta(hours=3))
        after = integral(stored, metric, T0, T0 + timedelta(hours=3))
        assert before is not None and after == pytest.approx(before, rel=Decimal("1e-20"))
    assert meters.compact(T0 + timedelta(hours=2, minutes=30)) == 0  # idempotent
