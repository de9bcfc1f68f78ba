"""Allocation: turn metered intervals, a price book and owned capacity into dollars per workload.

The rule is OpenCost's (spec v01, "Workload Costs"): a workload is charged for what it *reserved or
used, whichever is greater* — ``max(request, usage) x hours x price`` for CPU and memory — because a
reservation blocks the scheduler from giving that capacity to anyone else, and usage above the request
was taken from someone. GPUs are charged **by request only** (``request x hours x price``, fractional
GPUs by their fraction). The spec's table says "greater of requested and used" for GPU too, but
OpenCost's implementation (``applyGPUsAllocated`` in ``pkg/costmodel``) computes
``GPUHours = GPUs requested (or allocated) x hours`` and never looks at utilization; we do the same,
because a GPU cannot be overcommitted — a pod cannot use more GPUs than it was given — and utilization
(a percent of busy time) is not an amount of GPUs. Utilization is used for something else: an
interval whose time-weighted GPU utilization over the window is under ``gpu_idle_threshold`` (default
10%) has its GPU cost reported as **idle GPU cost** — money spent on GPUs that did (almost) nothing,
the waste a team can act on. It is a label on cost already charged, not an extra charge.

**Idle capacity** (OpenCost's "Cluster Idle Cost") is owned capacity minus allocation, per pool and
per resource: ``capacity x window hours x price - sum of the pool's charges``. Capacity is passed in per
pool (``PoolCapacity``), constant over the window; a pool without one has no idle. Idle below zero
(usage above every request and above capacity, i.e. inconsistent data) is clamped to zero and reported
as ``overage_cost``, so ``capacity = allocated + idle - overage`` holds exactly, per pool. (Charges are
rounded to the nano-dollar per row and capacity once; when rows that exactly fill a resource sum to at
most one nano per row above its capacity cost, the capacity cost is taken as the charged sum: rounding
is not reported as overage.)

With ``idle="separate"`` idle stays in ``Allocation.pools`` and views show it as one ``__idle__`` row.
With ``idle="share"`` each pool's idle is distributed to the workloads that ran on that pool, **per
resource, in proportion to their cost of that resource** (idle GPU by GPU cost, idle CPU by CPU cost),
as OpenCost's ``shareIdle`` does (``computeIdleCoeffs``: one coefficient per resource). Idle of a
resource nobody in the pool was charged for — GPUs in a pool that ran only CPU work — stays
``__idle__``, as OpenCost leaves it undistributed, rather than landing on workloads that never asked
for it. Both modes give the same grand total.

Intervals are clipped to the window, and nothing is charged after ``now``: running intervals
(``end`` None) and the window itself stop at ``now``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, get_args

from pilothouse.cost.metering import MeteredInterval, Owner, UsageSummary, summarize_usage
from pilothouse.cost.money import (
    BYTES_PER_GIB,
    NANO,
    SECONDS_PER_HOUR,
    ZERO,
    amount_map,
    charge,
    exact,
    non_negative,
    precise,
    split,
)
from pilothouse.cost.pricebook import PriceBook, Rates
from pilothouse.cost.windows import Window, require_aware

IdleMode = Literal["separate", "share"]
IDLE_MODES: tuple[IdleMode, ...] = get_args(IdleMode)
DEFAULT_GPU_IDLE_THRESHOLD = Decimal(10)
"""Percent: an interval whose average GPU utilization over the window is below this is 'GPU idle'."""


@dataclass(frozen=True, slots=True)
class PoolCapacity:
    """What a pool owns (and pays for) during the window: cores, bytes and accelerators, all constant."""

    pool: str
    cpu_cores: Decimal = ZERO
    memory_bytes: Decimal = ZERO
    accelerators: Mapping[str, Decimal] = field(default_factory=dict)
    """Keys must match the intervals' accelerator keys exactly (``nvidia.com/gpu`` or ``...:H100``)."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "cpu_cores", non_negative(self.cpu_cores, f"capacity[{self.pool}].cpu_cores")
        )
        object.__setattr__(
            self, "memory_bytes", non_negative(self.memory_bytes, f"capacity[{self.pool}].memory_bytes")
        )
        object.__setattr__(
            self, "accelerators", amount_map(self.accelerators, f"capacity[{self.pool}].accelerators")
        )


@dataclass(frozen=True, slots=True)
class IntervalCost:
    """One interval's charges inside the window. Amounts in dollars at nano-dollar precision."""

    interval: MeteredInterval
    span: Window | None
    """The part of the interval inside the window (None: only request tallies fell inside)."""
    cpu_core_hours: Decimal
    """Charged core-hours: max(request, average usage) x hours."""
    memory_gib_hours: Decimal
    """Charged GiB-hours: max(request, average usage) x hours."""
    gpu_hours: Decimal
    """Requested accelerator-hours, all accelerator kinds together."""
    cpu_cost: Decimal
    memory_cost: Decimal
    gpu_costs: Mapping[str, Decimal]
    """Per accelerator key."""
    usage: UsageSummary | None
    gpu_idle: bool
    """GPUs requested, utilization known, and its time-weighted average below the threshold."""
    requests: int
    """Requests served inside the window (endpoints)."""
    shared_idle_cost: Decimal = ZERO
    """This interval's share of its pool's idle capacity (``idle="share"`` only)."""

    @property
    def owner(self) -> Owner:
        return self.interval.owner

    @property
    def gpu_cost(self) -> Decimal:
        return sum(self.gpu_costs.values(), ZERO)

    @property
    def cost(self) -> Decimal:
        """Its own charges, without any shared idle."""
        return self.cpu_cost + self.memory_cost + self.gpu_cost

    @property
    def total(self) -> Decimal:
        return self.cost + self.shared_idle_cost

    @property
    def idle_gpu_cost(self) -> Decimal:
        """The GPU cost of a GPU-idle interval (already inside ``gpu_cost``; shown, not added)."""
        return self.gpu_cost if self.gpu_idle else ZERO

    @property
    def gpu_utilization(self) -> Decimal | None:
        """Time-weighted average GPU utilization (percent) over the span; None without GPUs or samples."""
        if self.usage is None or not self.interval.requested.gpus:
            return None
        return self.usage.gpu_utilization


@dataclass(frozen=True, slots=True)
class PoolIdle:
    """One pool's capacity against its allocation over the window."""

    pool: str
    capacity: PoolCapacity
    capacity_cost: Decimal
    allocated_cost: Decimal
    """The own cost of every interval on the pool (without shared idle)."""
    idle_cpu_cost: Decimal
    idle_memory_cost: Decimal
    idle_gpu_cost: Decimal
    overage_cost: Decimal
    """Charges beyond capacity (per resource): the negative idle that is not reported as idle."""
    unshared_cpu_cost: Decimal
    unshared_memory_cost: Decimal
    unshared_gpu_cost: Decimal
    """What stays as ``__idle__``: all of the idle in separate mode, what could not be shared otherwise."""

    @property
    def idle_cost(self) -> Decimal:
        return self.idle_cpu_cost + self.idle_memory_cost + self.idle_gpu_cost

    @property
    def unshared_cost(self) -> Decimal:
        return self.unshared_cpu_cost + self.unshared_memory_cost + self.unshared_gpu_cost


@dataclass(frozen=True, slots=True)
class Allocation:
    """The result of ``allocate``: per-interval costs and per-pool idle, ready for ``views.aggregate``."""

    window: Window
    """The window actually charged: the requested one, ending at ``now`` at the latest."""
    idle_mode: IdleMode
    gpu_idle_threshold: Decimal
    intervals: tuple[IntervalCost, ...]
    pools: tuple[PoolIdle, ...]

    @property
    def workload_cost(self) -> Decimal:
        """Everything charged to workloads, shared idle included."""
        return sum((c.total for c in self.intervals), ZERO)

    @property
    def idle_cost(self) -> Decimal:
        """Idle left as ``__idle__`` (in share mode: only idle of resources nobody on the pool was charged for)."""
        return sum((p.unshared_cost for p in self.pools), ZERO)

    @property
    def total(self) -> Decimal:
        return self.workload_cost + self.idle_cost


def allocate(
    intervals: Iterable[MeteredInterval],
    prices: PriceBook,
    window: Window,
    now: datetime,
    *,
    capacity: Iterable[PoolCapacity] = (),
    idle: IdleMode = "separate",
    gpu_idle_threshold: Decimal | int = DEFAULT_GPU_IDLE_THRESHOLD,
) -> Allocation:
    """Charge every interval for its part of ``window`` and compute each pool's idle capacity.

    ``capacity`` lists what each pool owns (pools not listed have no idle row). ``idle`` is
    ``"separate"`` (idle is its own ``__idle__`` row) or ``"share"`` (idle spread over the pool's
    workloads in proportion to their cost). ``gpu_idle_threshold`` is a percent, 0-100.
    """
    if idle not in IDLE_MODES:
        raise ValueError(f"idle must be one of {', '.join(IDLE_MODES)} (got {idle!r})")
    threshold = non_negative(gpu_idle_threshold, "gpu_idle_threshold")
    if threshold > 100:
        raise ValueError(f"gpu_idle_threshold is a percent, 0-100 (got {gpu_idle_threshold})")
    now = require_aware(now, "now")
    charged = Window(window.start, max(window.start, min(window.end, now)))
    capacities: dict[str, PoolCapacity] = {}
    for cap in capacity:
        if cap.pool in capacities:
            raise ValueError(f"capacity for pool {cap.pool!r} given twice")
        capacities[cap.pool] = cap

    rates: dict[str, Rates] = {}
    rows: list[IntervalCost] = []
    for interval in intervals:
        pool_rates = rates.get(interval.pool)
        if pool_rates is None:
            pool_rates = rates[interval.pool] = prices.rates(interval.pool)
        row = _charge_interval(interval, pool_rates, charged, now, threshold)
        if row is not None:
            rows.append(row)

    pools: list[PoolIdle] = []
    for name, cap in capacities.items():
        pool_rates = rates.get(name)
        if pool_rates is None:
            pool_rates = prices.rates(name)
        members = [i for i, row in enumerate(rows) if row.interval.pool == name]
        pool, shares = _pool_idle(cap, pool_rates, charged, [rows[i] for i in members], idle)
        pools.append(pool)
        for i, share in zip(members, shares, strict=True):
            if share:
                rows[i] = dataclasses.replace(rows[i], shared_idle_cost=rows[i].shared_idle_cost + share)
    return Allocation(
        window=charged,
        idle_mode=idle,
        gpu_idle_threshold=threshold,
        intervals=tuple(rows),
        pools=tuple(pools),
    )


def _charge_interval(
    interval: MeteredInterval, rates: Rates, window: Window, now: datetime, threshold: Decimal
) -> IntervalCost | None:
    end = min(interval.end or now, now)
    span = window.clip(interval.start, end) if interval.start < end else None
    requests = sum(t.count for t in interval.request_counts if t.at in window)
    if span is None:
        if not requests:
            return None
        return IntervalCost(
            interval=interval,
            span=None,
            cpu_core_hours=ZERO,
            memory_gib_hours=ZERO,
            gpu_hours=ZERO,
            cpu_cost=ZERO,
            memory_cost=ZERO,
            gpu_costs={},
            usage=None,
            gpu_idle=False,
            requests=requests,
        )
    seconds = span.seconds
    usage = summarize_usage(interval.samples, span)
    asked = interval.requested
    with precise():
        core_seconds = max(asked.cpu_cores * seconds, usage.cpu_core_seconds or ZERO)
        gib_seconds = max(asked.memory_bytes * seconds, usage.memory_byte_seconds or ZERO) / BYTES_PER_GIB
        gpu_seconds = {key: count * seconds for key, count in asked.accelerators.items()}
        gpu_costs = {key: charge(s, rates.accelerator(key)) for key, s in gpu_seconds.items()}
        gpu_idle = (
            bool(asked.gpus)
            and usage.gpu_utilization_seconds is not None
            and usage.gpu_utilization_seconds < threshold * seconds
        )
        return IntervalCost(
            interval=interval,
            span=span,
            cpu_core_hours=exact(core_seconds / SECONDS_PER_HOUR),
            memory_gib_hours=exact(gib_seconds / SECONDS_PER_HOUR),
            gpu_hours=exact(sum(gpu_seconds.values(), ZERO) / SECONDS_PER_HOUR),
            cpu_cost=charge(core_seconds, rates.cpu_core_hour),
            memory_cost=charge(gib_seconds, rates.memory_gib_hour),
            gpu_costs=gpu_costs,
            usage=usage,
            gpu_idle=gpu_idle,
            requests=requests,
        )


def _pool_idle(
    cap: PoolCapacity, rates: Rates, window: Window, rows: list[IntervalCost], mode: IdleMode
) -> tuple[PoolIdle, list[Decimal]]:
    """Idle per resource for one pool, and (share mode) each row's share of it."""
    seconds = window.seconds
    with precise():
        capacity = {
            "cpu": charge(cap.cpu_cores * seconds, rates.cpu_core_hour),
            "memory": charge(cap.memory_bytes * seconds / BYTES_PER_GIB, rates.memory_gib_hour),
        }
    gpu_keys = sorted(set(cap.accelerators) | {k for row in rows for k in row.gpu_costs})
    for key in gpu_keys:
        capacity[f"gpu:{key}"] = charge(cap.accelerators.get(key, ZERO) * seconds, rates.accelerator(key))

    def cost_of(row: IntervalCost, resource: str) -> Decimal:
        if resource == "cpu":
            return row.cpu_cost
        if resource == "memory":
            return row.memory_cost
        return row.gpu_costs.get(resource.removeprefix("gpu:"), ZERO)

    idle: dict[str, Decimal] = {}
    overage = ZERO
    for resource, rounded in list(capacity.items()):
        allocated = sum((cost_of(row, resource) for row in rows), ZERO)
        owned = rounded
        if ZERO < allocated - rounded <= NANO * len(rows):
            # Each row is rounded to the nano-dollar on its own, the capacity once: rows that exactly fill
            # the capacity can sum a few nanos above it. That is rounding, not overage: the capacity cost
            # is taken as what was charged.
            owned = capacity[resource] = allocated
        idle[resource] = max(ZERO, owned - allocated)
        overage += max(ZERO, allocated - owned)

    shares = [ZERO] * len(rows)
    unshared = dict(idle)
    if mode == "share":
        for resource, amount in idle.items():
            if not amount:
                continue
            weights = [cost_of(row, resource) for row in rows]
            if not any(weights):
                continue  # nobody on this pool was charged for this resource: it stays __idle__
            for i, part in enumerate(split(amount, weights)):
                shares[i] += part
            unshared[resource] = ZERO

    def gpu_total(amounts: Mapping[str, Decimal]) -> Decimal:
        return sum((v for k, v in amounts.items() if k.startswith("gpu:")), ZERO)

    pool = PoolIdle(
        pool=cap.pool,
        capacity=cap,
        capacity_cost=sum(capacity.values(), ZERO),
        allocated_cost=sum((row.cost for row in rows), ZERO),
        idle_cpu_cost=idle["cpu"],
        idle_memory_cost=idle["memory"],
        idle_gpu_cost=gpu_total(idle),
        overage_cost=overage,
        unshared_cpu_cost=unshared["cpu"],
        unshared_memory_cost=unshared["memory"],
        unshared_gpu_cost=gpu_total(unshared),
    )
    return pool, shares
