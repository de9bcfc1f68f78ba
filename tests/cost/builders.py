"""Small constructors for the cost tests: one place that knows the data model's shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pilothouse.cost import Kind, MeteredInterval, Owner, RequestTally, ResourceRequests, UsageSample

T0 = datetime(2025, 3, 1, tzinfo=UTC)
"""A fixed origin: 2025-03-01 00:00 UTC (March has 31 days)."""
GIB = 2**30


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def at(h: float) -> datetime:
    """``T0`` plus ``h`` hours."""
    return T0 + hours(h)


def interval(
    name: str = "work",
    *,
    team: str = "a",
    kind: Kind = "Job",
    pool: str = "local",
    cpu: str | int = 0,
    memory_gib: str | int = 0,
    gpus: str | int = 0,
    accelerators: Mapping[str, str | int] | None = None,
    start: float = 0,
    end: float | None = 10,
    samples: Sequence[UsageSample] = (),
    tallies: Sequence[tuple[float, int]] = (),
    revision: int | None = None,
    attempt: int | None = None,
    id: str | None = None,
) -> MeteredInterval:
    """An interval from ``at(start)`` to ``at(end)`` (None: still running)."""
    accel: dict[str, Decimal] = {k: Decimal(v) for k, v in (accelerators or {}).items()}
    if gpus:
        accel["nvidia.com/gpu"] = Decimal(gpus)
    return MeteredInterval(
        id=id or f"{team}/{name}/{start}",
        owner=Owner(kind, team, name),
        pool=pool,
        requested=ResourceRequests(
            cpu_cores=Decimal(cpu), memory_bytes=Decimal(memory_gib) * GIB, accelerators=accel
        ),
        start=at(start),
        end=None if end is None else at(end),
        revision=revision if revision is not None or kind == "Job" else 1,
        attempt=attempt if attempt is not None or kind != "Job" else 1,
        samples=tuple(samples),
        request_counts=tuple(RequestTally(at(h), n) for h, n in tallies),
    )


def sample(
    h: float,
    *,
    cpu: str | None = None,
    memory_gib: str | None = None,
    gpu_util: str | None = None,
) -> UsageSample:
    return UsageSample(
        at=at(h),
        cpu_cores=None if cpu is None else Decimal(cpu),
        memory_bytes=None if memory_gib is None else Decimal(memory_gib) * GIB,
        gpu_utilization=None if gpu_util is None else Decimal(gpu_util),
    )
