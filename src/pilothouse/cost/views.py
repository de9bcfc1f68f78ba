"""Views: per-interval costs summed into the rows people ask for — by team, endpoint, revision, job.

Allocation works at the finest grain (one replica or worker in one window), as OpenCost computes at
the container; every view is a pure ``group by`` over those rows, so any two views of one allocation
agree on the total to the nano-dollar. The views:

==========  ==================================  ======================================
view        key columns                         rows
==========  ==================================  ======================================
team        team                                every workload, plus ``__idle__``
namespace   namespace (= team)                  every workload, plus ``__idle__``
kind        kind                                every workload, plus ``__idle__``
workload    kind, team, name                    every workload, plus ``__idle__``
pool        pool                                every workload, plus ``__idle__``
endpoint    team, name                          ModelEndpoints only
revision    team, name, revision                ModelEndpoints only
job         team, name                          Jobs only
attempt     team, name, attempt                 Jobs only
interval    kind, team, name, revision,         every workload, plus ``__idle__``
            attempt, pool, interval
==========  ==================================  ======================================

``__idle__`` is one row (all pools) holding the idle capacity that no workload carries — all of it with
``idle="separate"``, only what could not be shared with ``idle="share"``; it is omitted when zero and
never appears in the kind-filtered views. Rows come sorted by total cost, largest first, ``__idle__``
last. ``to_records`` and ``to_csv`` render them for ``-o json`` / CSV; money is shown in cents
(half-even), and ``exact=True`` keeps the nano-dollar amounts.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from pilothouse.cost.allocation import Allocation, IntervalCost
from pilothouse.cost.metering import Kind
from pilothouse.cost.money import NANO, ZERO, precise, to_cents

IDLE = "__idle__"
KeyValue = str | int | None


@dataclass(frozen=True, slots=True)
class View:
    """A named grouping: which key columns identify a row, and which kinds it shows (None: all)."""

    name: str
    columns: tuple[str, ...]
    kinds: frozenset[Kind] | None = None


_ENDPOINTS: frozenset[Kind] = frozenset({"ModelEndpoint"})
_JOBS: frozenset[Kind] = frozenset({"Job"})
VIEWS: dict[str, View] = {
    v.name: v
    for v in (
        View("team", ("team",)),
        View("namespace", ("namespace",)),
        View("kind", ("kind",)),
        View("workload", ("kind", "team", "name")),
        View("pool", ("pool",)),
        View("endpoint", ("team", "name"), _ENDPOINTS),
        View("revision", ("team", "name", "revision"), _ENDPOINTS),
        View("job", ("team", "name"), _JOBS),
        View("attempt", ("team", "name", "attempt"), _JOBS),
        View("interval", ("kind", "team", "name", "revision", "attempt", "pool", "interval")),
    )
}
_NUMERIC_KEYS = frozenset({"revision", "attempt"})


def _key_value(row: IntervalCost, column: str) -> KeyValue:
    interval = row.interval
    values: dict[str, KeyValue] = {
        "team": interval.owner.namespace,
        "namespace": interval.owner.namespace,
        "kind": interval.owner.kind,
        "name": interval.owner.name,
        "revision": interval.revision,
        "attempt": interval.attempt,
        "pool": interval.pool,
        "interval": interval.id,
    }
    return values[column]


@dataclass(frozen=True, slots=True)
class CostRow:
    """One row of a view. Amounts are exact dollars (nano-dollar precision); round with ``to_cents``."""

    key: Mapping[str, KeyValue]
    """The view's key columns, in order (``{"team": "nlp"}``)."""
    cpu_core_hours: Decimal
    memory_gib_hours: Decimal
    gpu_hours: Decimal
    cpu_cost: Decimal
    memory_cost: Decimal
    gpu_cost: Decimal
    shared_idle_cost: Decimal
    idle_gpu_cost: Decimal
    """GPU cost of GPU-idle intervals: part of ``gpu_cost``, shown as the waste to act on."""
    gpu_utilization: Decimal | None
    """GPU-hour-weighted average utilization (percent) of the intervals where it is known."""
    requests: int
    endpoint_cost: Decimal
    """The part of ``total_cost`` that belongs to ModelEndpoints (the numerator of cost per 1k requests)."""
    intervals: int
    is_idle: bool = False

    @property
    def total_cost(self) -> Decimal:
        return self.cpu_cost + self.memory_cost + self.gpu_cost + self.shared_idle_cost

    @property
    def cost_per_1k_requests(self) -> Decimal | None:
        """Endpoint cost (shared idle included) per 1,000 requests served; None without requests."""
        if not self.requests:
            return None
        with precise():
            return (self.endpoint_cost * 1000 / self.requests).quantize(NANO, rounding=ROUND_HALF_EVEN)

    def record(self, exact: bool = False) -> dict[str, str | int | None]:
        """A flat, JSON-ready dict: key columns, then metrics. Money in cents unless ``exact``."""

        def money(value: Decimal | None) -> str | None:
            if value is None:
                return None
            return str(value if exact else to_cents(value))

        def amount(value: Decimal | None, places: str) -> str | None:
            if value is None:
                return None
            return str(value if exact else value.quantize(Decimal(places), rounding=ROUND_HALF_EVEN))

        out: dict[str, str | int | None] = dict(self.key)
        out.update(
            {
                "cpu_core_hours": amount(self.cpu_core_hours, "0.0001"),
                "memory_gib_hours": amount(self.memory_gib_hours, "0.0001"),
                "gpu_hours": amount(self.gpu_hours, "0.0001"),
                "cpu_cost": money(self.cpu_cost),
                "memory_cost": money(self.memory_cost),
                "gpu_cost": money(self.gpu_cost),
                "shared_idle_cost": money(self.shared_idle_cost),
                "total_cost": money(self.total_cost),
                "idle_gpu_cost": money(self.idle_gpu_cost),
                "gpu_utilization": amount(self.gpu_utilization, "0.1"),
                "requests": self.requests,
                "cost_per_1k_requests": money(self.cost_per_1k_requests),
            }
        )
        return out


class _Sum:
    """Running sums for one group."""

    def __init__(self) -> None:
        self.cpu_core_hours = ZERO
        self.memory_gib_hours = ZERO
        self.gpu_hours = ZERO
        self.cpu_cost = ZERO
        self.memory_cost = ZERO
        self.gpu_cost = ZERO
        self.shared_idle_cost = ZERO
        self.idle_gpu_cost = ZERO
        self.util_weighted = ZERO
        self.util_hours = ZERO
        self.requests = 0
        self.endpoint_cost = ZERO
        self.intervals = 0

    def add(self, row: IntervalCost) -> None:
        with precise():
            self.cpu_core_hours += row.cpu_core_hours
            self.memory_gib_hours += row.memory_gib_hours
            self.gpu_hours += row.gpu_hours
            self.cpu_cost += row.cpu_cost
            self.memory_cost += row.memory_cost
            self.gpu_cost += row.gpu_cost
            self.shared_idle_cost += row.shared_idle_cost
            self.idle_gpu_cost += row.idle_gpu_cost
            if row.gpu_utilization is not None and row.gpu_hours:
                self.util_weighted += row.gpu_utilization * row.gpu_hours
                self.util_hours += row.gpu_hours
            if row.owner.kind == "ModelEndpoint":
                self.endpoint_cost += row.total
        self.requests += row.requests
        self.intervals += 1

    def row(self, key: Mapping[str, KeyValue]) -> CostRow:
        with precise():
            utilization = self.util_weighted / self.util_hours if self.util_hours else None
        return CostRow(
            key=dict(key),
            cpu_core_hours=self.cpu_core_hours,
            memory_gib_hours=self.memory_gib_hours,
            gpu_hours=self.gpu_hours,
            cpu_cost=self.cpu_cost,
            memory_cost=self.memory_cost,
            gpu_cost=self.gpu_cost,
            shared_idle_cost=self.shared_idle_cost,
            idle_gpu_cost=self.idle_gpu_cost,
            gpu_utilization=utilization,
            requests=self.requests,
            endpoint_cost=self.endpoint_cost,
            intervals=self.intervals,
        )


def resolve_view(by: str | View) -> View:
    if isinstance(by, View):
        return by
    try:
        return VIEWS[by]
    except KeyError:
        raise ValueError(f"unknown cost view {by!r} (known: {', '.join(VIEWS)})") from None


def aggregate(allocation: Allocation, by: str | View = "team", *, include_idle: bool = True) -> list[CostRow]:
    """Group ``allocation``'s intervals by a view (a name from ``VIEWS`` or a ``View``).

    Without kind filter, the rows (``__idle__`` included) add up to ``allocation.total`` exactly.
    """
    view = resolve_view(by)
    groups: dict[tuple[KeyValue, ...], _Sum] = {}
    for item in allocation.intervals:
        if view.kinds is not None and item.owner.kind not in view.kinds:
            continue
        key = tuple(_key_value(item, column) for column in view.columns)
        groups.setdefault(key, _Sum()).add(item)
    rows = [acc.row(dict(zip(view.columns, key, strict=True))) for key, acc in groups.items()]
    rows.sort(key=lambda r: (-r.total_cost, tuple(str(v) for v in r.key.values())))
    if include_idle and view.kinds is None:
        idle = _idle_row(allocation, view.columns)
        if idle is not None:
            rows.append(idle)
    return rows


def _idle_row(allocation: Allocation, columns: Sequence[str]) -> CostRow | None:
    cpu = sum((p.unshared_cpu_cost for p in allocation.pools), ZERO)
    memory = sum((p.unshared_memory_cost for p in allocation.pools), ZERO)
    gpu = sum((p.unshared_gpu_cost for p in allocation.pools), ZERO)
    if not (cpu or memory or gpu):
        return None
    return CostRow(
        key={c: (None if c in _NUMERIC_KEYS else IDLE) for c in columns},
        cpu_core_hours=ZERO,
        memory_gib_hours=ZERO,
        gpu_hours=ZERO,
        cpu_cost=cpu,
        memory_cost=memory,
        gpu_cost=gpu,
        shared_idle_cost=ZERO,
        idle_gpu_cost=ZERO,
        gpu_utilization=None,
        requests=0,
        endpoint_cost=ZERO,
        intervals=0,
        is_idle=True,
    )


def total_row(rows: Iterable[CostRow], label: str = "TOTAL") -> CostRow:
    """The sum of ``rows`` (the ``__idle__`` row included), keyed ``{first column: label}``."""
    rows = list(rows)
    columns = list(rows[0].key) if rows else ["total"]
    with precise():
        weighted = sum((r.gpu_utilization * r.gpu_hours for r in rows if r.gpu_utilization is not None), ZERO)
        known_hours = sum((r.gpu_hours for r in rows if r.gpu_utilization is not None), ZERO)
        utilization = weighted / known_hours if known_hours else None
    return CostRow(
        key={c: (label if i == 0 else None) for i, c in enumerate(columns)},
        cpu_core_hours=sum((r.cpu_core_hours for r in rows), ZERO),
        memory_gib_hours=sum((r.memory_gib_hours for r in rows), ZERO),
        gpu_hours=sum((r.gpu_hours for r in rows), ZERO),
        cpu_cost=sum((r.cpu_cost for r in rows), ZERO),
        memory_cost=sum((r.memory_cost for r in rows), ZERO),
        gpu_cost=sum((r.gpu_cost for r in rows), ZERO),
        shared_idle_cost=sum((r.shared_idle_cost for r in rows), ZERO),
        idle_gpu_cost=sum((r.idle_gpu_cost for r in rows), ZERO),
        gpu_utilization=utilization,
        requests=sum(r.requests for r in rows),
        endpoint_cost=sum((r.endpoint_cost for r in rows), ZERO),
        intervals=sum(r.intervals for r in rows),
    )


def to_records(rows: Iterable[CostRow], *, exact: bool = False) -> list[dict[str, str | int | None]]:
    """Rows as JSON-ready dicts (money as decimal strings, so no float ever touches a cent)."""
    return [row.record(exact=exact) for row in rows]


def to_csv(rows: Iterable[CostRow], *, exact: bool = False) -> str:
    """Rows as CSV text with a header line; empty cells for unknown values."""
    records = to_records(rows, exact=exact)
    if not records:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()
