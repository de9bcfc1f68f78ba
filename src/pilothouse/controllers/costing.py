"""From metering records to dollars: the one place the platform calls the pure cost core.

``CostReports`` reads a window's records from the ``MeterStore``, turns them into
``pilothouse.cost.MeteredInterval``s and prices them with the price book. Both the cost API and the
budget check (month-to-date spend per team) go through it, so they agree to the nano-dollar.

**Idle capacity only for time the platform was up.** ``allocate`` takes each pool's capacity as
constant over the window, but an embedded control plane owns the machine only while it runs. The
metering loop records that time as ``Pool`` intervals carrying the pool's capacity; here each pool's
capacity is their time-weighted average over the charged window, so ``capacity x window hours``
equals the capacity-hours the platform actually had (a ``7d`` report on a machine that ran the
platform for an hour shows an hour of idle, not a week).

**Prices can change while it runs** (``PUT .../pricebook``): ``CostReports`` holds an ``ActivePrices``
and reads the book once per pricing, so each report and each budget pass uses one book, and the first
pricing after a change uses the new one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from pilothouse.controllers.prices import ActivePrices
from pilothouse.cost import (
    Allocation,
    CostRow,
    IdleMode,
    MeteredInterval,
    Owner,
    PoolCapacity,
    PriceBook,
    RequestTally,
    ResourceRequests,
    UsageSample,
    Window,
    aggregate,
    allocate,
    parse_window,
    spend_by_team,
    total_row,
)
from pilothouse.cost.metering import KINDS
from pilothouse.store.metering import POOL_KIND, IntervalRecord, MeterReading, MeterStore

CPU, MEMORY = "cpu", "memory"
USAGE_METRICS = ("cpu_cores", "memory_bytes", "gpu_utilization", "gpu_memory_bytes")


def requested_map(requests: ResourceRequests) -> dict[str, str]:
    """A ``ResourceRequests`` as the store keeps it (decimal strings)."""
    out = {CPU: str(requests.cpu_cores), MEMORY: str(requests.memory_bytes)}
    out.update({key: str(count) for key, count in requests.accelerators.items()})
    return out


def _requests(requested: Mapping[str, str]) -> ResourceRequests:
    return ResourceRequests(
        cpu_cores=Decimal(requested.get(CPU, "0")),
        memory_bytes=Decimal(requested.get(MEMORY, "0")),
        accelerators={k: Decimal(v) for k, v in requested.items() if k not in (CPU, MEMORY)},
    )


def to_interval(reading: MeterReading) -> MeteredInterval:
    """One stored workload interval as the cost core's ``MeteredInterval``."""
    record = reading.interval
    if record.kind not in KINDS:
        raise ValueError(f"interval {record.id!r} is a {record.kind}, not a workload")
    return MeteredInterval(
        id=record.id,
        owner=Owner(record.kind, record.namespace, record.name),
        pool=record.pool,
        requested=_requests(record.requested),
        start=record.start,
        end=record.end,
        revision=record.revision,
        attempt=record.attempt,
        samples=tuple(
            UsageSample(s.at, **{m: Decimal(v) for m, v in s.usage.items() if m in USAGE_METRICS})
            for s in reading.samples
        ),
        request_counts=tuple(RequestTally(t.at, t.count) for t in reading.tallies),
    )


def pool_capacity(coverage: Iterable[IntervalRecord], window: Window, now: datetime) -> list[PoolCapacity]:
    """Each pool's capacity, time-weighted over ``window`` (clipped to ``now``) by ``Pool`` intervals."""
    charged = Window(window.start, max(window.start, min(window.end, now)))
    if not charged.seconds:
        return []
    totals: dict[str, dict[str, Decimal]] = {}
    for record in coverage:
        end = min(record.end or now, now)
        if end <= record.start:
            continue
        span = charged.clip(record.start, end)
        if span is None:
            continue
        pool = totals.setdefault(record.pool, {})
        for resource, amount in record.requested.items():
            pool[resource] = pool.get(resource, Decimal(0)) + Decimal(amount) * span.seconds
    return [
        PoolCapacity(
            pool,
            cpu_cores=amounts.pop(CPU, Decimal(0)) / charged.seconds,
            memory_bytes=amounts.pop(MEMORY, Decimal(0)) / charged.seconds,
            accelerators={k: v / charged.seconds for k, v in amounts.items()},
        )
        for pool, amounts in sorted(totals.items())
    ]


class CostReports:
    """Cost views and month-to-date spend over what the metering loop recorded."""

    def __init__(
        self, meters: MeterStore, prices: ActivePrices | PriceBook, clock: Callable[[], datetime]
    ) -> None:
        self.meters = meters
        self.prices = prices if isinstance(prices, ActivePrices) else ActivePrices(prices)
        """The book in force; replaced through ``prices.replace`` (the price-book API)."""
        self.clock = clock

    def allocation(self, window: Window, now: datetime, idle: IdleMode = "separate") -> Allocation:
        readings = self.meters.read(window.start, min(window.end, now))
        workloads = [to_interval(r) for r in readings if r.interval.kind != POOL_KIND]
        coverage = [r.interval for r in readings if r.interval.kind == POOL_KIND]
        book = self.prices.get()  # one book for the whole pricing, even if it is replaced meanwhile
        return allocate(
            workloads, book, window, now, capacity=pool_capacity(coverage, window, now), idle=idle
        )

    def rows(
        self, window: str, by: str, *, team: str | None = None, idle: IdleMode = "separate"
    ) -> tuple[Window, list[CostRow]]:
        """The view ``by`` over ``window`` (``7d``, ``month``...), with a total row; one team's rows only
        when ``team`` is given (idle capacity is nobody's team, so it is left out then)."""
        now = self.clock()
        allocation = self.allocation(parse_window(window, now), now, idle)
        if team is not None:
            mine = tuple(i for i in allocation.intervals if i.owner.namespace == team)
            allocation = dataclasses.replace(allocation, intervals=mine, pools=())
        rows = aggregate(allocation, by)
        return allocation.window, [*rows, total_row(rows)]

    def month_to_date(self, now: datetime) -> dict[str, Decimal]:
        """Each team's spend this calendar month (UTC), shared idle not included: what budgets judge."""
        return spend_by_team(self.allocation(parse_window("month", now), now))
