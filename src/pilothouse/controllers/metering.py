"""The metering loop: turn what the runtime runs into metered intervals, usage samples and request tallies.

Every ``period`` seconds (``tick``) it observes the runtime — the replicas of every ModelEndpoint and
the workers of every running Job attempt — and keeps **exactly one open interval per running replica
or worker**, keyed by a stable id (``<owner uid>/<replica id>``, ``<owner uid>/attempt-N/worker-I``):

* a replica or worker seen for the first time opens an interval starting *now* (first sight, so the
  start is late by at most one period), with its requests from the spec (``ResourceRequests.from_api``;
  for a replica of an older revision still serving, that revision's own spec from the spec history),
  pool ``local``, owner and revision or attempt;
* an open interval whose replica or worker is gone is closed at ``min(now, last seen + period)``: in
  normal operation that is now; after a control plane was down for a day, it is shortly after the
  replica was last seen alive — never the day in between. Level-triggered, so a restart needs no
  special case: the first tick closes whatever vanished while nobody watched;
* replicas of an endpoint that is being deleted (the runtime still has them, the store no longer)
  keep their open intervals until they are gone, but no new ones are opened.

It also samples each process tree's usage (``UsageSampler``: psutil, NVML where present) and counts
the requests each endpoint completed since the last tick from the gateway (``TrafficSource``). The
gateway counts per endpoint and second; the count is split over the endpoint's revisions in
proportion to their recent requests, and a revision's share evenly over its open intervals — an
approximation that is exact per revision when one revision serves, and exact per endpoint always.

A ``Pool`` interval covers the time this loop runs, with the runtime's capacity, so idle capacity is
charged only for time the platform was up (see ``controllers.costing``).

Every ``budget_period`` it prices the month so far, hands the spend to the ``BudgetLedger`` (which the
queue pass and admission ask) and writes ``spendThisMonth`` and ``budgetState`` into each Team's status,
with a Warning event when a team crosses a threshold. Once an hour it compacts usage samples older than
``raw_samples_for`` (24 h), so storage grows with hours run, not with sampling periods. ``reprice()`` (called when the price book is
replaced) wakes the loop and makes its next pass price the month again, with the new prices.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from pilothouse.api.event import ObjectReference
from pilothouse.api.job import Job
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.team import Team
from pilothouse.controllers.budgets import BUDGET_EXCEEDED, BudgetLedger, spend_text, status_text
from pilothouse.controllers.costing import CostReports, requested_map
from pilothouse.controllers.revision_specs import older_revision_specs
from pilothouse.controllers.traffic import TrafficSource
from pilothouse.controllers.usage import UsageSampler
from pilothouse.cost import LOCAL_POOL, ResourceRequests
from pilothouse.runtime.protocol import JobRuntime, Runtime
from pilothouse.store.metering import POOL_KIND, IntervalRecord, MeterStore, SampleRecord, TallyRecord
from pilothouse.store.protocol import Conflict, NotFound, Store

log = logging.getLogger(__name__)

RAW_SAMPLES_FOR = timedelta(hours=24)
"""Usage samples younger than this are kept as taken; older whole hours are compacted
(``store.sample_compaction``: three per hour, interval and metric, integrals kept)."""
COMPACT_EVERY = timedelta(hours=1)

RUNNING_JOB_PHASES = frozenset({"Starting", "Running", "Terminating"})
K = TypeVar("K", int, str)
GATEWAY_HISTORY_SECONDS = 120.0
"""The gateway keeps at least this many per-second samples; a longer period would lose counts."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Seen:
    """One running replica or worker this tick: the interval to open if it is new, and its processes."""

    record: IntervalRecord
    pid: int | None
    devices: tuple[str, ...]


class MeteringLoop:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        meters: MeterStore,
        reports: CostReports,
        ledger: BudgetLedger,
        *,
        jobs: JobRuntime | None = None,
        usage: UsageSampler | None = None,
        traffic: TrafficSource | None = None,
        period: float = 10.0,
        budget_period: float = 60.0,
        clock: Callable[[], datetime] = utcnow,
        pool: str = LOCAL_POOL,
        raw_samples_for: timedelta = RAW_SAMPLES_FOR,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.meters = meters
        self.reports = reports
        self.ledger = ledger
        self.jobs = jobs
        self.usage = usage
        self.traffic = traffic
        self.period = period
        self.budget_period = budget_period
        self.clock = clock
        self.pool = pool
        self._coverage_id: str | None = None
        self._priced_at: datetime | None = None
        self.raw_samples_for = raw_samples_for
        self._compacted_at: datetime | None = None
        self._counted: dict[tuple[str, str], float] = {}
        self._levels: dict[str, str] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reprice = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass ----------------------------------------------------------------------------------

    def tick(self) -> None:
        now = self.clock()
        seen, alive = self._observe(now)
        open_now = {r.id: r for r in self.meters.open_intervals()}
        for interval_id, item in seen.items():
            if interval_id not in open_now:
                self.meters.open_interval(item.record)
        for interval_id, record in open_now.items():
            if interval_id not in seen and interval_id not in alive:
                last = record.last_seen or record.start
                self.meters.close_interval(interval_id, min(now, last + timedelta(seconds=self.period)))
        self.meters.record(
            seen=[*seen, *(alive & open_now.keys())],
            at=now,
            samples=self._samples(seen, now),
            tallies=self._tallies(seen, now),
        )
        due = self._priced_at is None or (now - self._priced_at).total_seconds() >= self.budget_period
        if due or self._reprice.is_set():
            self._reprice.clear()  # before pricing: a change during this pass asks for another one
            self.price_budgets(now)
        if self._compacted_at is None or now - self._compacted_at >= COMPACT_EVERY:
            self._compacted_at = now
            removed = self.meters.compact(now - self.raw_samples_for)
            if removed:
                log.info("compacted %d usage samples older than %s", removed, self.raw_samples_for)

    def reprice(self) -> None:
        """The prices changed: price the month again on a pass that starts now, not a period later."""
        self._reprice.set()
        self._wake.set()

    def _observe(self, now: datetime) -> tuple[dict[str, Seen], set[str]]:
        """Running replicas and workers of stored owners (``seen``) and of deleted ones (``alive``)."""
        seen: dict[str, Seen] = {}
        alive: set[str] = set()
        coverage = self._coverage(now)
        if coverage is not None:
            seen[coverage.id] = Seen(coverage, None, ())
        endpoint_uids: set[str] = set()
        for endpoint in self.store.list("ModelEndpoint").items:
            assert isinstance(endpoint, ModelEndpoint) and endpoint.metadata.uid
            uid = endpoint.metadata.uid
            endpoint_uids.add(uid)
            by_revision = self._revision_requests(endpoint)
            latest = requested_map(ResourceRequests.from_api(endpoint.spec.resources))
            for replica in self.runtime.observe(uid):
                requested = by_revision.get(replica.revision, latest)
                record = self._record(
                    f"{uid}/{replica.id}", endpoint, requested, now, revision=replica.revision
                )
                seen[record.id] = Seen(record, replica.pid, replica.devices)
        for uid in self.runtime.owners() - endpoint_uids:
            alive.update(f"{uid}/{r.id}" for r in self.runtime.observe(uid))
        if self.jobs is None:
            return seen, alive
        job_uids: set[str] = set()
        for job in self.store.list("Job").items:
            assert isinstance(job, Job) and job.metadata.uid
            job_uids.add(job.metadata.uid)
            requested = requested_map(ResourceRequests.from_api(job.spec.resources))
            for interval_id, pid, devices, attempt in self._workers(job.metadata.uid):
                record = self._record(interval_id, job, requested, now, attempt=attempt)
                seen[interval_id] = Seen(record, pid, devices)
        for uid in self.jobs.job_owners() - job_uids:
            alive.update(interval_id for interval_id, *_ in self._workers(uid))
        return seen, alive

    def _revision_requests(self, endpoint: ModelEndpoint) -> dict[int, dict[str, str]]:
        """What a replica of each older revision still in play reserves, from that revision's own spec
        (a canary of 2 GPUs next to a stable revision of 1 is charged 2 and 1, not 2 and 2)."""
        return {
            revision: requested_map(ResourceRequests.from_api(spec.resources))
            for revision, spec in older_revision_specs(self.store, endpoint).items()
        }

    def _workers(self, uid: str) -> list[tuple[str, int | None, tuple[str, ...], int]]:
        assert self.jobs is not None
        state = self.jobs.observe_job(uid)
        if state is None or state.phase not in RUNNING_JOB_PHASES:
            return []
        return [
            (f"{uid}/attempt-{state.attempt}/worker-{w.index}", w.pid, w.devices, state.attempt)
            for w in state.workers
            if w.exit_code is None
        ]

    def _record(
        self,
        interval_id: str,
        owner: ModelEndpoint | Job,
        requested: Mapping[str, str],
        now: datetime,
        *,
        revision: int | None = None,
        attempt: int | None = None,
    ) -> IntervalRecord:
        return IntervalRecord(
            id=interval_id,
            kind=owner.kind,
            namespace=owner.metadata.namespace,
            name=owner.metadata.name,
            pool=self.pool,
            requested=requested,
            start=now,
            last_seen=now,
            revision=revision,
            attempt=attempt,
            owner_uid=owner.metadata.uid or "",
        )

    def _coverage(self, now: datetime) -> IntervalRecord | None:
        """This loop's ``Pool`` interval: the pool's capacity, for as long as the platform meters it."""
        if self.jobs is None:
            return None
        if self._coverage_id is None:
            self._coverage_id = f"pool/{self.pool}/{now.isoformat()}"
        capacity = self.jobs.capacity()
        requested = {
            resource: str(Decimal(amount) / 1000 if resource == "cpu" else Decimal(amount))
            for resource, amount in capacity.items()
            if amount
        }
        return IntervalRecord(
            id=self._coverage_id,
            kind=POOL_KIND,
            namespace="",
            name=self.pool,
            pool=self.pool,
            requested=requested,
            start=now,
            last_seen=now,
        )

    # -- usage and requests ------------------------------------------------------------------------

    def _samples(self, seen: Mapping[str, Seen], now: datetime) -> list[SampleRecord]:
        if self.usage is None:
            return []
        out: list[SampleRecord] = []
        for interval_id, item in seen.items():
            if item.pid is None:
                continue
            usage = self.usage.sample(item.pid, item.devices)
            if usage is not None and usage.as_map():
                out.append(SampleRecord(interval_id, now, usage.as_map()))
        return out

    def _tallies(self, seen: Mapping[str, Seen], now: datetime) -> list[TallyRecord]:
        if self.traffic is None:
            return []
        by_endpoint: dict[tuple[str, str], dict[int, list[str]]] = {}
        for interval_id, item in seen.items():
            r = item.record
            if r.kind == "ModelEndpoint" and r.revision is not None:
                by_endpoint.setdefault((r.namespace, r.name), {}).setdefault(r.revision, []).append(
                    interval_id
                )
        tallies: list[TallyRecord] = []
        stamp = now.timestamp()
        for (namespace, name), revisions in by_endpoint.items():
            last = self._counted.get((namespace, name))
            if last is None:  # first sight: count from about one period back
                last = self._counted[(namespace, name)] = math.floor(stamp - self.period) - 1.0
            span = min(GATEWAY_HISTORY_SECONDS, stamp - last + 2)
            fresh = [s for s in self.traffic.samples(namespace, name, span) if s.t > last]
            if not fresh:
                continue
            self._counted[(namespace, name)] = max(s.t for s in fresh)
            count = sum(s.rps for s in fresh)
            if not count:
                continue
            weights = {
                rev: self.traffic.revision_stats(namespace, name, rev, span).requests for rev in revisions
            }
            for rev, share in _split(count, weights).items():
                ids = sorted(revisions[rev])
                for interval_id, part in _split(share, {i: 1 for i in ids}).items():
                    if part:
                        tallies.append(TallyRecord(interval_id, now, part))
        for key in set(self._counted) - set(by_endpoint):
            del self._counted[key]
        return tallies

    # -- budgets -----------------------------------------------------------------------------------

    def price_budgets(self, now: datetime) -> None:
        """Price the month so far, update the ledger, and show spend and budget state on every Team."""
        spend = self.reports.month_to_date(now)
        self.ledger.update(spend, now)
        self._priced_at = now
        for team in self.store.list("Team").items:
            assert isinstance(team, Team)
            name = team.metadata.name
            state = self.ledger.state(team, now)
            status = team.status.model_copy(deep=True)
            status.spendThisMonth = spend_text(spend.get(name, Decimal(0)))
            status.budgetState = status_text(state)
            if status != team.status:
                team.status = status
                try:
                    self.store.update_status(team)
                except (Conflict, NotFound):
                    continue  # changed meanwhile: the next pricing writes it
            level = "ok" if state is None else f"{state.level}:{state.threshold}"
            if state is not None and state.notify and self._levels.get(name, "ok") != level:
                reason = BUDGET_EXCEEDED if state.level == "exceeded" else "BudgetWarning"
                ref = ObjectReference(kind="Team", namespace="", name=name, uid=team.metadata.uid)
                self.store.record_event(ref, "Warning", reason, state.reason)
                log.warning("%s", state.reason)
            self._levels[name] = level

    # -- lifecycle ---------------------------------------------------------------------------------

    def close_all(self) -> None:
        """Close every open interval now (the control plane stops, and its workloads with it)."""
        now = self.clock()
        for record in self.meters.open_intervals():
            self.meters.close_interval(record.id, now)

    def start(self) -> None:
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name="pilothouse-metering", daemon=True)
        self._thread.start()

    def stop(self, *, close_open: bool = True, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if close_open:
            try:
                self.close_all()
            except Exception:
                log.exception("closing metered intervals failed; the next start closes them")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("metering pass failed; trying again in %.1f s", self.period)
            self._wake.wait(self.period)  # a period, or less when stopped or asked to reprice
            self._wake.clear()


def _split(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """``total`` split over the keys in proportion to ``weights`` (equally if all are 0), largest remainder."""
    keys = sorted(weights, key=str)
    if not keys:
        return {}
    raw = {k: weights[k] for k in keys}
    if not any(raw.values()):
        raw = dict.fromkeys(keys, 1)
    whole = sum(raw.values())
    parts = {k: total * w // whole for k, w in raw.items()}
    rest = total - sum(parts.values())
    by_remainder = sorted(keys, key=lambda k: (-(total * raw[k] % whole), str(k)))
    for k in by_remainder[:rest]:
        parts[k] += 1
    return parts
