"""The metering data model: what ran, where, asking for what, and what it actually used.

The unit of metering is the **metered interval**: one model-server replica of one endpoint revision, or
one worker of one job attempt, from the moment it started holding resources until it stopped (``end``
None while it still runs). Intervals are what both runtimes can observe cheaply — a process started and
stopped, a pod was scheduled and deleted — and they make every window question (a day, a month) a
matter of clipping, not of re-scanning events.

Each interval carries its **requests** (what the scheduler reserved for it: cores, bytes, accelerators
as counts, possibly fractional such as 0.5 GPU) and **usage samples** taken by the metering hook
(``UsageSample``: cpu cores used, memory bytes used, GPU utilization percent and GPU memory). Endpoints
also carry **request tallies** (requests served) so a report can say what 1,000 requests cost.

How samples become one number per window (``summarize_usage``): each metric is a step function — a
sample's value holds from its timestamp until the next sample of that metric; before the first sample
the first value holds (so a single sample stands for the whole interval). Over a span ``[a, b)`` we
integrate that step function (core-seconds, byte-seconds, percent-seconds). The time-weighted average
is the integral divided by the span. Allocation uses the integral directly (``max(request x seconds,
usage integral)``), which is exact and equals ``max(request, average usage) x seconds``. A metric with no
samples at all is *unknown* (None), never zero: unknown CPU usage charges the request, unknown GPU
utilization never flags a GPU as idle.

A sample's ``gpu_utilization`` is one number for the interval's GPUs together (the mean over its devices,
0-100), as DCGM's and NVML's per-device readings averaged by the hook.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, get_args

from pilothouse.api.modelendpoint import Resources
from pilothouse.api.quantity import parse_quantity
from pilothouse.cost.money import ZERO, amount_map, exact, non_negative, precise
from pilothouse.cost.windows import Window, require_aware, seconds_between

Kind = Literal["ModelEndpoint", "Job"]
KINDS: tuple[Kind, ...] = get_args(Kind)


@dataclass(frozen=True, slots=True)
class Owner:
    """The workload an interval belongs to. ``namespace`` is the team."""

    kind: Kind
    namespace: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"owner kind must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if not self.namespace or not self.name:
            raise ValueError("owner namespace and name must not be empty")

    @property
    def team(self) -> str:
        return self.namespace


@dataclass(frozen=True, slots=True)
class ResourceRequests:
    """What the scheduler reserved for one replica or worker: cores, bytes, accelerator counts.

    Accelerator keys are resource names (``nvidia.com/gpu``), optionally with the model the hook saw
    (``nvidia.com/gpu:H100``) so the price book can price models differently. Counts may be fractional.
    """

    cpu_cores: Decimal = ZERO
    memory_bytes: Decimal = ZERO
    accelerators: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cpu_cores", non_negative(self.cpu_cores, "requests.cpu_cores"))
        object.__setattr__(self, "memory_bytes", non_negative(self.memory_bytes, "requests.memory_bytes"))
        object.__setattr__(self, "accelerators", amount_map(self.accelerators, "requests.accelerators"))

    @classmethod
    def of(
        cls,
        cpu: str | int | Decimal | None = None,
        memory: str | int | Decimal | None = None,
        accelerators: Mapping[str, Decimal | int | float | str] | None = None,
    ) -> ResourceRequests:
        """Build from Kubernetes quantities, as manifests write them: ``of("500m", "2Gi", {"nvidia.com/gpu": "0.5"})``."""
        return cls(
            cpu_cores=ZERO if cpu is None else parse_quantity(str(cpu)),
            memory_bytes=ZERO if memory is None else parse_quantity(str(memory)),
            accelerators=amount_map(accelerators or {}, "requests.accelerators"),
        )

    @classmethod
    def from_api(cls, resources: Resources, gpu_model: str | None = None) -> ResourceRequests:
        """From a ``ModelEndpoint`` spec's (or a ``Job``'s per-worker) ``resources``.

        ``gpu_model`` (e.g. ``H100``, from GPU discovery on the node) is appended to every accelerator
        key so model-specific prices apply.
        """
        accelerators: dict[str, Decimal] = {
            (f"{key}:{gpu_model}" if gpu_model else key): Decimal(count)
            for key, count in resources.accelerators.items()
        }
        return cls.of(resources.cpu, resources.memory, accelerators)

    @property
    def gpus(self) -> Decimal:
        """All accelerators together (the count GPU idleness is judged on)."""
        return sum(self.accelerators.values(), ZERO)


@dataclass(frozen=True, slots=True)
class UsageSample:
    """One reading of what an interval used at ``at``; a metric left None was not measured."""

    at: datetime
    cpu_cores: Decimal | None = None
    memory_bytes: Decimal | None = None
    gpu_utilization: Decimal | None = None
    """Percent, 0-100, mean over the interval's GPUs."""
    gpu_memory_bytes: Decimal | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", require_aware(self.at, "sample time"))
        for name in ("cpu_cores", "memory_bytes", "gpu_utilization", "gpu_memory_bytes"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, non_negative(value, f"sample.{name}"))
        if self.gpu_utilization is not None and self.gpu_utilization > 100:
            raise ValueError(f"sample.gpu_utilization is a percent, 0-100 (got {self.gpu_utilization})")


@dataclass(frozen=True, slots=True)
class RequestTally:
    """``count`` requests completed in the period ending at ``at`` (a window counts tallies inside it)."""

    at: datetime
    count: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", require_aware(self.at, "tally time"))
        if self.count < 0:
            raise ValueError(f"request tally count must not be negative (got {self.count})")


@dataclass(frozen=True, slots=True)
class MeteredInterval:
    """One replica (endpoints: ``revision``) or one worker (jobs: ``attempt``) holding resources on ``pool``.

    ``id`` names the replica or worker (a pod uid, a process record id); it is carried into per-interval
    rows so a number can be traced back. ``end`` None means still running: allocation uses ``now``.
    """

    id: str
    owner: Owner
    pool: str
    requested: ResourceRequests
    start: datetime
    end: datetime | None = None
    revision: int | None = None
    attempt: int | None = None
    samples: tuple[UsageSample, ...] = ()
    request_counts: tuple[RequestTally, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_aware(self.start, f"interval {self.id!r} start"))
        if self.end is not None:
            end = require_aware(self.end, f"interval {self.id!r} end")
            if end < self.start:
                raise ValueError(f"interval {self.id!r}: end {end.isoformat()} is before start")
            object.__setattr__(self, "end", end)
        if not self.pool:
            raise ValueError(f"interval {self.id!r}: pool must not be empty (local mode: 'local')")
        object.__setattr__(self, "samples", tuple(sorted(self.samples, key=lambda s: s.at)))
        object.__setattr__(self, "request_counts", tuple(self.request_counts))

    @property
    def team(self) -> str:
        return self.owner.namespace


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """Integrals of each metric over a span; None where the metric was never sampled."""

    seconds: Decimal
    cpu_core_seconds: Decimal | None
    memory_byte_seconds: Decimal | None
    gpu_utilization_seconds: Decimal | None
    """Percent-seconds."""
    gpu_memory_byte_seconds: Decimal | None

    def _average(self, integral: Decimal | None) -> Decimal | None:
        if integral is None or not self.seconds:
            return None
        return exact(integral / self.seconds)

    @property
    def cpu_cores(self) -> Decimal | None:
        """Time-weighted average cores used."""
        return self._average(self.cpu_core_seconds)

    @property
    def memory_bytes(self) -> Decimal | None:
        return self._average(self.memory_byte_seconds)

    @property
    def gpu_utilization(self) -> Decimal | None:
        """Time-weighted average GPU utilization, percent."""
        return self._average(self.gpu_utilization_seconds)

    @property
    def gpu_memory_bytes(self) -> Decimal | None:
        return self._average(self.gpu_memory_byte_seconds)


def integrate(points: Iterable[tuple[datetime, Decimal]], span: Window) -> Decimal | None:
    """Integral over ``span`` of the step function through ``points`` (value holds until the next point).

    Before the first point, the first value holds. No points: None (unknown, not zero).
    """
    ordered = sorted(points, key=lambda p: p[0])
    if not ordered:
        return None
    with precise():
        return _integrate(ordered, span)


def _integrate(ordered: list[tuple[datetime, Decimal]], span: Window) -> Decimal:
    total = ZERO
    # The value in force at span.start: the last point at or before it, else the first point.
    current = ordered[0][1]
    cursor = span.start
    for at, value in ordered:
        if at <= span.start:
            current = value
            continue
        if at >= span.end:
            break
        total += current * seconds_between(cursor, at)
        cursor, current = at, value
    return total + current * seconds_between(cursor, span.end)


def summarize_usage(samples: Iterable[UsageSample], span: Window) -> UsageSummary:
    """Integrate every metric of ``samples`` over ``span`` (see the module docstring for the semantics)."""
    samples = tuple(samples)

    def series(name: str) -> list[tuple[datetime, Decimal]]:
        return [(s.at, v) for s in samples if (v := getattr(s, name)) is not None]

    return UsageSummary(
        seconds=span.seconds,
        cpu_core_seconds=integrate(series("cpu_cores"), span),
        memory_byte_seconds=integrate(series("memory_bytes"), span),
        gpu_utilization_seconds=integrate(series("gpu_utilization"), span),
        gpu_memory_byte_seconds=integrate(series("gpu_memory_bytes"), span),
    )
