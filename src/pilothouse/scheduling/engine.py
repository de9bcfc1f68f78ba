"""The scheduler core: one incremental engine behind every policy, the pure ``schedule(snapshot)`` and the
trace simulator alike.

``schedule`` builds an engine from a snapshot and runs one cycle; the simulator keeps one engine alive and
feeds it arrivals and completions, so a cycle costs what changed, not the size of the queue. A cycle walks
the pending jobs in the policy's order and admits every job that fits (no one-per-queue limit); it stops
as soon as the indexes in ``queues`` say nothing else can start. Preemptions are decided after
admissions and only mark their victims terminating: nothing is admitted into room a preemption has yet to
free. With quotas, each walk (the ordered walk and the backfill) first visits only jobs within their
team's nominal quota, across all teams, and only then the rest: a job borrowing a team's idle nominal is
admitted only after that team's own within-nominal jobs of the cycle, so the cohort never ends a cycle
having borrowed more than its members may still lend (as Kueue does). The engine applies its own decisions to its state (admitted jobs run from ``now``), which is what
the simulator wants and what ``schedule`` throws away.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.scheduling.explain import Block, Explainer, inadmissible_reason
from pilothouse.scheduling.preemption import Victim, choose_victims
from pilothouse.scheduling.queues import PendingJob, PendingQueues
from pilothouse.scheduling.quota import QuotaBook
from pilothouse.scheduling.reservation import INF, Reservation, reserve
from pilothouse.scheduling.resources import ResourceSpace, Vec, amount, first_short, fits, relative
from pilothouse.scheduling.snapshot import (
    GPU,
    Admit,
    Decisions,
    Inadmissible,
    JobRequest,
    Preempt,
    ResourceVector,
    RunningJob,
    TeamSpec,
)


@dataclass(frozen=True)
class Rules:
    """What distinguishes one policy from another; everything else is shared."""

    name: str
    order: str
    """Key within a queue: "priority" (priority with aging), "fifo", "sjf" or "las"."""
    per_team: bool = False
    """One queue per team merged by fair share (``fair``), else one global queue."""
    quotas: bool = False
    blocking: str = "reserve"
    """At a job that does not fit: "strict" stops, "skip" goes on, "reserve" goes on under a reservation."""
    preemption: str = "none"
    """"fair" (reclaim up to fair share + priority within a team), "las", or "none"."""
    aging_per_hour: float = 60.0
    """Priority points a waiting job gains per hour (``fair``): low (100) overtakes a fresh normal (500)
    after 6 h 40 min of waiting."""
    las_thresholds: tuple[float, ...] = (3600.0, 36000.0, 360000.0)
    """GPU-seconds of attained service at which a job drops to the next LAS queue."""
    scan_limit: int = 2000
    """Jobs a cycle may pass over after the first that cannot start (Slurm's ``bf_max_job_test``)."""
    reclaim_below: float = 0.9
    """Reclaim starts when a team has less than this fraction of its fair share, and may take a victim team
    down to this fraction of *its* share, never lower (the band between them is the hysteresis: a victim
    left at 90% or more never reclaims back, so jobs do not bounce). The reclaiming team gets its next job
    even when that takes it past its share: its jobs may be larger than the gap."""


RECLAIM_OPTIONS = 3
"""How many of a starved team's waiting jobs one reclaim tries (its first, then smaller ones)."""

LAS_PREEMPTORS = 16
"""LAS looks at this many jobs at the head of its queue for preemption per cycle."""


class RunningRec:
    __slots__ = ("end", "id", "need", "preemptible", "req", "started", "team", "terminating")

    def __init__(self, req: JobRequest, team: int, need: Vec, started: float, preemptible: bool) -> None:
        self.req = req
        self.id = req.id
        self.team = team
        self.need = need
        self.started = started
        self.preemptible = preemptible
        self.terminating = False
        dur = req.expected_duration
        self.end: float | None = None if dur is None else started + dur


class Engine:
    def __init__(
        self,
        rules: Rules,
        capacity: ResourceVector,
        teams: Mapping[str, TeamSpec],
        resources: Iterable[str] = (),
        nodes: Iterable[ResourceVector] = (),
    ) -> None:
        self.rules = rules
        names = set(capacity) | set(resources) | {r for t in teams.values() for r in t.quotas}
        self.space = ResourceSpace(names)
        self.capacity: Vec = self.space.vec(capacity)
        self.nodes: list[Vec] = sorted(
            {self.space.vec({r: n for r, n in node.items() if r in self.space.index}) for node in nodes}
        )
        """Distinct node shapes (empty: one machine); only for "can any node hold one worker?"."""
        self.book = QuotaBook(self.space, [teams[name] for name in sorted(teams)])
        self.book.set_capacity_scale(self.capacity)
        n_res = len(self.space.names)
        n_teams = len(self.book.teams)
        self.queues = PendingQueues(n_teams if rules.per_team else 1, n_teams, n_res)
        self.running: dict[str, RunningRec] = {}
        self.by_team: list[dict[str, RunningRec]] = [{} for _ in range(n_teams)]
        self.priorities: list[dict[int, int]] = [{} for _ in range(n_teams)]
        """Per team: priority -> count of running, non-terminating jobs (for "can it preempt its own?")."""
        self.terminating: dict[str, RunningRec] = {}
        self.ends: list[tuple[float, str]] = []
        self.free: list[float] = [float(c) for c in self.capacity]
        self.gpu = self.space.index.get(GPU)
        self._aging = rules.aging_per_hour / 3600.0
        self._shares: tuple[int, list[list[float]]] | None = None
        self._demand_changes = 0
        """Bumped when some team's demand (running + pending) changes: an arrival, a release, a
        withdrawal. Admitting a job moves it from pending to running and leaves demand, hence fair shares,
        as they were, so the cycles that only admit reuse the cached shares."""
        self.nominated: dict[str, list[str]] = {}
        """Waiting job -> the jobs preempted to make room for it. A nominated job is offered that room first
        in every later cycle, before the ordered walk, so the room a reclaim frees goes to the job it was
        freed for (not to the victim's own requeued job, which would make the pair bounce)."""
        self.teamless: set[int] = set()
        """Teams the engine made up for jobs whose team it was not given (a namespace whose Team was
        deleted, or that never had one while other Teams exist): their running jobs hold no quota, so any
        team below its fair share may reclaim from them, cohort or not."""
        self.inadmissible: dict[str, str] = {}
        """Pending job -> why it cannot start (more than the cluster, or than its team's ceiling): kept out
        of the queues, so it takes no reservation and adds nothing to its team's demand."""

    # -- state changes --------------------------------------------------------------------------------

    def _team(self, name: str) -> int:
        index = self.book.team_index.get(name)
        if index is None:
            index = self.book.add_team(TeamSpec(name=name, quotas={}))
            self.teamless.add(index)
            self.book.scale[index] = [float(max(c, 1)) for c in self.capacity]
            self.queues.add_team(len(self.space.names))
            self.by_team.append({})
            self.priorities.append({})
            if self.rules.per_team:
                self.queues.add_queue()
        return index

    def _need(self, req: JobRequest) -> Vec:
        unknown = [name for name in req.per_worker if name not in self.space.index]
        if unknown:
            raise ValueError(f"job {req.id!r} requests {unknown[0]!r}, which this engine does not track")
        return self.space.vec(req.per_worker, max(req.workers, 0))

    def key(self, req: JobRequest) -> tuple[Any, ...]:
        order = self.rules.order
        if order == "priority":
            return (-(req.priority - self._aging * req.submitted), req.submitted, req.id)
        if order == "sjf":
            dur = req.expected_duration
            return (INF if dur is None else dur, req.submitted, req.id)
        if order == "las":
            return (self.las_level(req.attained_service), req.submitted, req.id)
        return (req.submitted, req.id)

    def las_level(self, attained: float) -> int:
        return bisect.bisect_right(self.rules.las_thresholds, attained)

    def submit(self, req: JobRequest) -> None:
        if req.id in self.running:
            raise ValueError(f"job {req.id!r} is both running and pending")
        if req.id in self.inadmissible:
            raise ValueError(f"job {req.id!r} appears twice")
        team = self._team(req.team)
        need = self._need(req)
        never = inadmissible_reason(self, team, req, need)
        if never is not None:
            self.inadmissible[req.id] = never
            return
        job = PendingJob(req, team, need, self.key(req), team if self.rules.per_team else 0)
        self.queues.add(job)
        self._demand_changes += 1

    def withdraw(self, job_id: str) -> None:
        if self.inadmissible.pop(job_id, None) is not None:
            return
        self.queues.remove(job_id)
        self._demand_changes += 1
        self.nominated.pop(job_id, None)

    def nominate(self, job_id: str, victims: list[str]) -> None:
        """``job_id`` waits for the room ``victims`` release (also how a snapshot carries it across cycles)."""
        if job_id in self.queues.jobs:
            self.nominated[job_id] = list(victims)

    def add_running(self, job: RunningJob) -> None:
        req = job.request
        if req.id in self.running or req.id in self.queues.jobs or req.id in self.inadmissible:
            raise ValueError(f"job {req.id!r} appears twice")
        rec = RunningRec(req, self._team(req.team), self._need(req), job.started, job.preemptible)
        self._start(rec)
        self._demand_changes += 1
        if job.terminating:
            self._mark_terminating(rec)

    def _start(self, rec: RunningRec) -> None:
        self.running[rec.id] = rec
        self.by_team[rec.team][rec.id] = rec
        prios = self.priorities[rec.team]
        prios[rec.req.priority] = prios.get(rec.req.priority, 0) + 1
        for r, amount_ in enumerate(rec.need):
            self.free[r] -= amount_
        self.book.change(rec.team, rec.need, +1)
        if rec.end is not None:
            bisect.insort(self.ends, (rec.end, rec.id))

    def _mark_terminating(self, rec: RunningRec) -> None:
        if rec.terminating:
            return
        if rec.end is not None:
            del self.ends[bisect.bisect_left(self.ends, (rec.end, rec.id))]
        self._forget_priority(rec)
        rec.terminating = True
        self.terminating[rec.id] = rec

    def _forget_priority(self, rec: RunningRec) -> None:
        prios = self.priorities[rec.team]
        prios[rec.req.priority] -= 1
        if not prios[rec.req.priority]:
            del prios[rec.req.priority]

    def release(self, job_id: str) -> RunningRec:
        """A running job ended (finished, failed, or its preemption completed): its resources are free."""
        rec = self.running.pop(job_id)
        self._demand_changes += 1
        del self.by_team[rec.team][job_id]
        for r, amount_ in enumerate(rec.need):
            self.free[r] += amount_
        self.book.change(rec.team, rec.need, -1)
        if rec.terminating:
            del self.terminating[job_id]
        else:
            self._forget_priority(rec)
            if rec.end is not None:
                del self.ends[bisect.bisect_left(self.ends, (rec.end, rec.id))]
        return rec

    # -- fair shares --------------------------------------------------------------------------------

    def demand(self) -> list[list[float]]:
        return [
            [u + d for u, d in zip(usage, pending, strict=True)]
            for usage, pending in zip(self.book.usage, self.queues.team_demand, strict=True)
        ]

    def shares(self) -> list[list[float]]:
        """Fair share per team and resource, cached until some team's demand changes."""
        stamp = self._demand_changes
        if self._shares is None or self._shares[0] != stamp:
            self._shares = (stamp, self.book.fair_shares(self.demand()))
        return self._shares[1]

    def fair_shares(self) -> dict[str, dict[str, float]]:
        shares = self.shares()
        return {
            team.name: {self.space.names[r]: shares[i][r] for r in self.book.managed_idx}
            for i, team in enumerate(self.book.teams)
        }

    # -- one cycle ----------------------------------------------------------------------------------

    def cycle(self, now: float, explain: bool = False) -> Decisions:
        run = _Cycle(self, now)
        run.admit_pass()
        if self.rules.preemption == "las":
            run.preempt_las()
        decisions = Decisions(
            admit=run.admitted,
            preempt=run.preempted,
            inadmissible=[Inadmissible(job_id, why) for job_id, why in sorted(self.inadmissible.items())],
        )
        if explain:
            decisions.waiting.extend(Explainer(self, run.report(), now).waiting())
        return decisions


@dataclass
class CycleReport:
    """What one cycle saw, for the explainer: why each visited job waits, the reservation, preemptions."""

    blocks: dict[str, Block]
    reservation: Reservation | None
    avail: list[float]
    truncated: bool
    strict_stop: str | None
    claims: dict[str, list[str]]
    """Waiting job -> jobs being preempted (or terminating) whose release it waits for."""


class _Cycle:
    """The state of one scheduling cycle (kept apart from the engine so a cycle leaves no residue)."""

    def __init__(self, engine: Engine, now: float) -> None:
        self.e = engine
        self.now = now
        self.rules = engine.rules
        self.avail = [max(0.0, f) for f in engine.free]
        self.admitted: list[Admit] = []
        self.preempted: list[Preempt] = []
        self.blocks: dict[str, Block] = {}
        self.head: PendingJob | None = None
        self.res: Reservation | None = None
        self.passed = 0
        self.truncated = False
        self.strict_stop: str | None = None
        self.switched = False
        self.claims: dict[str, list[str]] = {}
        self._may_fit = True
        self._dirty = True
        self.tentative: list[RunningRec] = []
        self.usage_before: list[list[float]] = []
        self.nominal_only = False
        """Within-nominal phase: jobs that would borrow are deferred to the second phase."""
        self.seen: set[str] = set()
        """Jobs the within-nominal phase decided on (the second phase skips them)."""
        e = engine
        self.two_phase = self.rules.quotas and bool(e.book.cohorts) and bool(e.book.managed_idx)

    def report(self) -> CycleReport:
        return CycleReport(self.blocks, self.res, self.avail, self.truncated, self.strict_stop, self.claims)

    # -- admission ----------------------------------------------------------------------------------

    def _anything_can_start(self) -> bool:
        if not self._dirty:
            return self._may_fit
        self._dirty = False
        q = self.e.queues
        if not q.any_fits(self.avail):
            self._may_fit = False
        elif self.head is None:
            self._may_fit = True
        else:
            res = self._reservation()
            horizon = res.start - self.now if res.start < INF else -1.0
            self._may_fit = q.any_backfill(self.avail, res.extra, horizon)
        return self._may_fit

    def _reservation(self) -> Reservation:
        if self.res is None:
            assert self.head is not None
            e = self.e
            terminating = [rec.need for rec in e.terminating.values()]
            self.res = reserve(
                self.head.id, self.head.need, self.avail, self.now, terminating, e.ends, e.running
            )
        return self.res

    def consider(self, job: PendingJob) -> str:
        """Admit ``job`` if it may start now; returns "admitted", "quota", "blocked", "stop" or (within-nominal
        phase, a job that would borrow) "deferred"."""
        e = self.e
        if self.nominal_only and not e.book.within_nominal(job.team, job.need):
            return "deferred"
        block = e.book.check(job.team, job.need) if self.rules.quotas else None
        if block is not None and block.kind != "cohort":
            self.blocks[job.id] = Block("quota", block.resource, quota=block)
            self.passed += 1
            return "quota"
        short = first_short(job.need, self.avail)
        if short is not None:
            self.blocks[job.id] = Block("capacity", short)
            if self.rules.blocking == "strict":
                self.strict_stop = job.id
                return "stop"
            if self.rules.blocking == "reserve" and self.head is None:
                self.head = job
                self._dirty = True
            self.passed += 1
            return "blocked"
        if block is not None:
            # Room in the cluster, but the cohort has nothing left to lend (lending limits, or quotas that
            # do not add up to the capacity).
            self.blocks[job.id] = Block("quota", block.resource, quota=block)
            self.passed += 1
            return "quota"
        how = ""
        if self.head is not None:
            res = self._reservation()
            end = INF if job.dur is None else self.now + job.dur
            way = res.allows(job.need, end)
            if way is None:
                short = first_short(job.need, res.extra)
                self.blocks[job.id] = Block("reserved", short if short is not None else 0, head=self.head.id)
                self.passed += 1
                return "blocked"
            how = way
        self._admit(job, how)
        return "admitted"

    def admit_nominated(self) -> None:
        """Jobs room was made for by preemption start first, once their victims are gone. A nomination
        lapses when the job starts or leaves, or when nothing it waits for still holds resources and it
        still cannot start (its own quota or the cluster changed): it then competes again like any job."""
        e = self.e
        for job_id, victims in sorted(e.nominated.items(), key=lambda item: e.queues.jobs[item[0]].key):
            job = e.queues.jobs[job_id]
            block = e.book.check(job.team, job.need) if self.rules.quotas else None
            if block is None and fits(job.need, self.avail):
                self._admit(job, "reclaimed")
            elif not any(v in e.running for v in victims):
                del e.nominated[job_id]
            else:
                # Still waiting for its victims: what they release is not for anyone else.
                for r, amount_ in enumerate(job.need):
                    self.avail[r] = max(0.0, self.avail[r] - amount_)
                self.claims[job_id] = [v for v in victims if v in e.running]
                self.seen.add(job_id)
                self._dirty = True

    def _admit(self, job: PendingJob, how: str) -> None:
        e = self.e
        reason = self._admit_reason(job, how)
        e.nominated.pop(job.id, None)
        e.queues.remove(job.id)
        for r, amount_ in enumerate(job.need):
            self.avail[r] -= amount_
        rec = RunningRec(job.req, job.team, job.need, self.now, True)
        e._start(rec)
        self.admitted.append(Admit(job.id, reason))
        self._dirty = True

    def _admit_reason(self, job: PendingJob, how: str) -> str:
        e = self.e
        names = e.space.names
        head = self.head.id if self.head is not None else ""
        if how == "ends-before":
            assert self.res is not None
            prefix = (
                f"backfill: ends before {head}'s reserved start ({relative(self.res.start - self.now)}); "
            )
        elif how == "reclaimed":
            prefix = "the room preempted for it is free; "
        elif how == "spare":
            prefix = f"backfill: uses only resources {head}'s reservation does not need; "
        else:
            prefix = ""
        if not self.rules.quotas or not e.book.managed_idx:
            used = [r for r, a in enumerate(job.need) if a]
            r = e.gpu if e.gpu is not None and job.need[e.gpu] else (used[0] if used else 0)
            return f"{prefix}fits in free capacity: {amount(names[r], self.avail[r])} free"
        book = e.book
        uses = [r for r in book.managed_idx if job.need[r]]
        if not uses:
            return f"{prefix}uses no quota-managed resource"
        r = e.gpu if e.gpu in uses else uses[0]
        after = book.usage[job.team][r] + job.need[r]
        nominal = book.nominal[job.team][r]
        if after <= nominal:
            return f"{prefix}within quota {after:g}/{nominal:g} {names[r]}"
        borrowed = after - max(nominal, book.usage[job.team][r])
        cohort = book.cohort_names[book.cohort_of[job.team]]
        return f"{prefix}borrowing {borrowed:g} {names[r]} from cohort {cohort} ({after:g} used, nominal {nominal:g})"

    def admit_pass(self) -> None:
        """Walk the order until the first job that cannot start; then (unless strict) only backfill
        candidates, fetched from the indexes instead of walking the rest of the queues."""
        q = self.e.queues
        if self.e.nominated:
            self.admit_nominated()
        if self.two_phase:
            self._merge(self._within_nominal_lists(), shrinking=False, nominal_only=True)
            if self.head is not None:
                self.switched = True
        if not (self.switched or self.truncated or self.strict_stop is not None):
            self._merge(q.keys, shrinking=True)
        if self.rules.preemption == "fair":
            # Reclaim before backfill: when a team takes back what it is owed, what is free now is part of
            # it, and backfilling that only to preempt the same jobs next would be churn.
            self.preempt_fair()
            if self.preempted:
                return
        if self.switched and not self.truncated and self.strict_stop is None:
            lists = [
                q.candidates(i, self.avail, self._duration_limit) if keys and self._queue_may_start(i) else []
                for i, keys in enumerate(q.keys)
            ]
            if self.two_phase:
                book = self.e.book
                nominal = [
                    [k for k in keys if book.within_nominal(q.jobs[k[-1]].team, q.jobs[k[-1]].need)]
                    for keys in lists
                ]
                self._merge(nominal, shrinking=False, nominal_only=True)
            self._merge(lists, shrinking=False)

    def _within_nominal_lists(self) -> list[list[tuple[Any, ...]]]:
        """Per queue, sorted keys of the pending jobs within their team's nominal quota now (per request
        vector at most as many as the quota room holds, and one more than fits what is free, so the first
        that does not fit can take the reservation). Teams whose smallest request is over nominal are
        skipped without looking at their jobs."""
        e = self.e
        book, q = e.book, e.queues
        lists: list[list[tuple[Any, ...]]] = [[] for _ in q.keys]
        for team, buckets in enumerate(q.team_buckets):
            if not buckets:
                continue
            smallest = q.team_min_need(team)
            if smallest is None or not book.within_nominal(team, smallest):
                continue
            out = lists[team if self.rules.per_team else 0]
            usage, nominal, managed = book.usage[team], book.nominal[team], book.managed
            for need, bucket in buckets.items():
                if not book.within_nominal(team, need):
                    continue
                bound = bucket.count
                for r, a in enumerate(need):
                    if a:
                        bound = min(bound, int(self.avail[r] // a) + 1)
                        if managed[r]:
                            bound = min(bound, int((nominal[r] - usage[r]) // a))
                out.extend(bucket.keys[:bound])
        for keys in lists:
            keys.sort()
        return lists

    def _queue_may_start(self, queue: int) -> bool:
        q = self.e.queues
        team = queue if self.rules.per_team else None
        if self.head is None:
            return q.any_fits(self.avail, team)
        res = self._reservation()
        return q.any_backfill(self.avail, res.extra, res.start - self.now if res.start < INF else -1.0, team)

    def _duration_limit(self, need: Vec) -> float:
        """The longest expected duration a job needing ``need`` may have to start now (-1: none may)."""
        if self.head is None:
            return INF
        res = self._reservation()
        if fits(need, res.extra):
            return INF
        return res.start - self.now if res.start < INF else -1.0

    def _merge(self, lists: list[list[tuple[Any, ...]]], shrinking: bool, nominal_only: bool = False) -> None:
        """Visit jobs of several sorted key lists as one order: for ``fair``, a job within its team's
        nominal quota first, then the team with the lowest weighted dominant share (recomputed after each
        admission); one list is simply walked. ``shrinking``: the lists are the live queues (an admitted job
        leaves them). ``nominal_only``: the within-nominal phase (jobs that would borrow are deferred)."""
        self.nominal_only = nominal_only
        try:
            self._walk(lists, shrinking)
        finally:
            self.nominal_only = False

    def _walk(self, lists: list[list[tuple[Any, ...]]], shrinking: bool) -> None:
        q = self.e.queues
        book = self.e.book
        fair = self.rules.per_team
        heap: list[tuple[tuple[Any, ...], int, int]] = []
        for queue, keys in enumerate(lists):
            if keys:
                job = q.jobs.get(keys[0][-1])  # None: admitted in the within-nominal phase
                heap.append((self._team_key(job.team, job) if fair and job is not None else (), queue, 0))
        heapq.heapify(heap)
        while heap:
            if not self._anything_can_start():
                return
            if self.passed > self.rules.scan_limit:
                self.truncated = True
                return
            _, queue, i = heapq.heappop(heap)
            keys = lists[queue]
            found = q.jobs.get(keys[i][-1])
            if found is None or found.id in self.seen:  # admitted, or decided, earlier in this cycle
                outcome = "gone"
            else:
                outcome = self.consider(found)
                if self.nominal_only and outcome != "deferred":
                    self.seen.add(found.id)
                if outcome == "stop":
                    return
                if shrinking and (
                    self.head is not None or (outcome == "blocked" and self.rules.blocking == "skip")
                ):
                    self.switched = True
                    return
            if not (shrinking and outcome == "admitted"):
                i += 1
            if fair and outcome == "quota":
                smallest = q.team_min_need(queue)
                if smallest is None or book.check(queue, smallest) is not None:
                    continue  # nothing else of this team can pass its quota this cycle
            if i < len(keys):
                upcoming = q.jobs.get(keys[i][-1])
                key = self._team_key(upcoming.team, upcoming) if fair and upcoming is not None else ()
                heapq.heappush(heap, (key, queue, i))

    def _team_key(self, team: int, job: PendingJob) -> tuple[Any, ...]:
        book = self.e.book
        if book.within_nominal(team, job.need):
            return (0, book.usage_share(team), job.key)
        return (1, book.borrowed_share(team), job.key)

    # -- preemption ---------------------------------------------------------------------------------

    def _terminating_pool(self) -> list[float]:
        pool = [0.0] * len(self.avail)
        for rec in self.e.terminating.values():
            for r, amount_ in enumerate(rec.need):
                pool[r] += amount_
        return pool

    def _claim_terminating(self, job: PendingJob, pool: list[float]) -> bool:
        """If what is free plus what terminating jobs will release covers ``job``, it waits for that."""
        if fits(job.need, self.avail):
            return False  # it fits now: what holds it is the reservation, not a release
        soon = [a + p for a, p in zip(self.avail, pool, strict=True)]
        if not fits(job.need, soon):
            return False
        if self.rules.quotas and not self._quota_allows_after_release(job):
            return False  # its own quota stops it, whatever is released
        for r, amount_ in enumerate(job.need):
            pool[r] -= max(0.0, amount_ - self.avail[r])
        self.claims[job.id] = sorted(self.e.terminating)
        return True

    def _quota_allows_after_release(self, job: PendingJob) -> bool:
        """Whether ``job`` is within quota once the terminating jobs are gone: their quota is released with
        them (a team waiting for its own job's preemption to finish is not "at quota" because of it).
        Victims chosen in this cycle are already counted as freed (``tentative``)."""
        book = self.e.book
        counted = {rec.id for rec in self.tentative}
        leaving = [rec for rec in self.e.terminating.values() if rec.id not in counted]
        for rec in leaving:
            book.change(rec.team, rec.need, -1)
        try:
            return book.check(job.team, job.need) is None
        finally:
            for rec in leaving:
                book.change(rec.team, rec.need, +1)

    def _apply(self, job: PendingJob, victims: list[Victim]) -> None:
        e = self.e
        for victim in victims:
            rec = e.running[victim.job_id]
            e._mark_terminating(rec)
            self.preempted.append(Preempt(victim.job_id, victim.reason, job.id))
        self.claims[job.id] = [v.job_id for v in victims]
        e.nominate(job.id, [v.job_id for v in victims])

    def preempt_fair(self) -> None:
        """Reclaim for teams below their fair share, then priority within a team; one waiting job per team
        (its first), most starved team first."""
        e = self.e
        book, q = e.book, e.queues
        firsts = [(team, q.jobs[keys[0][-1]]) for team, keys in enumerate(q.keys) if keys]
        if not firsts:
            return
        pool = self._terminating_pool()
        shares = e.shares()
        managed = book.managed_idx
        self.usage_before = [list(u) for u in book.usage]

        def starvation(item: tuple[int, PendingJob]) -> tuple[float, str]:
            team = item[0]
            ratios = [book.usage[team][r] / shares[team][r] for r in managed if shares[team][r] > 0]
            return (max(ratios, default=1.0), book.teams[team].name)

        over = [
            t
            for t in range(len(book.teams))
            if e.by_team[t] and any(book.usage[t][r] > shares[t][r] + 1e-9 for r in managed)
        ]
        teamless = [t for t in over if t in e.teamless]
        if not any(pool):
            # Nothing is terminating, so no job can wait for a release: only teams that may reclaim or
            # preempt their own lower-priority jobs have anything to do here.
            below = self.rules.reclaim_below
            firsts = [
                (team, job)
                for team, job in firsts
                if (
                    (book.cohort_of[team] >= 0 or teamless)
                    and any(book.usage[team][r] < below * shares[team][r] for r in managed)
                )
                or min(e.priorities[team], default=job.req.priority) < job.req.priority
            ]
        taken = self._admitted_now()
        for team, job in sorted(firsts, key=starvation):
            if self._claim_terminating(job, pool):
                continue
            victims: list[Victim] | None = None
            beneficiary = job
            wants = [r for r in managed if job.need[r]]
            in_fair = any(book.usage[team][r] < self.rules.reclaim_below * shares[team][r] for r in wants)
            cohort = book.cohort_of[team]
            if in_fair and (cohort >= 0 or teamless):
                ranked = sorted(
                    (
                        rec
                        for t in over
                        if t != team and ((cohort >= 0 and book.cohort_of[t] == cohort) or t in e.teamless)
                        for rec in e.by_team[t].values()
                        if rec.preemptible and not rec.terminating and rec.id not in taken
                    ),
                    key=self._reclaim_order if e.teamless else _victim_order,
                )
                for option in self._reclaim_options(team, job) if ranked else ():
                    # A job that fits in what is free but did not start is held by the head's
                    # reservation: it gets room of its own from the victims (a swap, so the head's
                    # reserved start is not delayed: the victims release now what the job takes).
                    victims = choose_victims(
                        self,
                        option,
                        ranked,
                        pool,
                        mode="reclaim",
                        shares=shares,
                        own_room=self.head is not None and fits(option.need, self.avail),
                    )
                    if victims:
                        beneficiary = option
                        break
            if victims is None and min(e.priorities[team], default=job.req.priority) < job.req.priority:
                ranked = sorted(
                    (
                        rec
                        for rec in e.by_team[team].values()
                        if rec.preemptible
                        and not rec.terminating
                        and rec.id not in taken
                        and rec.req.priority < job.req.priority
                    ),
                    key=_victim_order,
                )
                victims = choose_victims(self, job, ranked, pool, mode="priority", shares=shares)
            if victims:
                taken.update(v.job_id for v in victims)
                self._apply(beneficiary, victims)
        self._undo_tentative()

    def _reclaim_order(self, rec: RunningRec) -> tuple[Any, ...]:
        """Reclaim victims: jobs of no team first (they hold no quota at all), then ``_victim_order``."""
        return (rec.team not in self.e.teamless, *_victim_order(rec))

    def _admitted_now(self) -> set[str]:
        """Jobs this cycle admitted: never victims of the same cycle (one decision must not both start and
        preempt a job; what blocks the waiting job then is resolved by later cycles)."""
        return {admit.job_id for admit in self.admitted}

    def _reclaim_options(self, team: int, first: PendingJob) -> list[PendingJob]:
        """The jobs a reclaim may make room for, in the team's order: its first job, then the first job of
        each smaller request (no larger in any resource; at most ``RECLAIM_OPTIONS`` in all). A team whose first job is a gang larger
        than anything its lenders can give back still gets its share through its smaller jobs; the large
        one keeps its place and its reservation."""
        q = self.e.queues
        smaller = sorted(
            bucket.keys[0]
            for need, bucket in q.team_buckets[team].items()
            if need != first.need and fits(need, first.need) and bucket.keys
        )
        return [first, *(q.jobs[key[-1]] for key in smaller[: RECLAIM_OPTIONS - 1])]

    def _undo_tentative(self) -> None:
        """Victims keep holding their quota until they are gone; only this phase counted them as freed."""
        for rec in self.tentative:
            self.e.book.change(rec.team, rec.need, +1)
        self.tentative.clear()

    def preempt_las(self) -> None:
        e = self.e
        pool = self._terminating_pool()
        level_of = {
            rec.id: e.las_level(rec.req.attained_service + self._gpus(rec.need) * (self.now - rec.started))
            for rec in e.running.values()
            if rec.preemptible and not rec.terminating
        }
        if not level_of:
            return
        q = e.queues
        head = (q.jobs[key[-1]] for key in q.keys[0][:LAS_PREEMPTORS])
        blocked = [job for job in head if not fits(job.need, self.avail)]
        taken = self._admitted_now()
        for job in blocked:
            if self._claim_terminating(job, pool):
                continue
            level = job.key[0]
            pool_ranked = sorted(
                (e.running[jid] for jid, lv in level_of.items() if lv > level and jid not in taken),
                key=lambda rec: (-level_of[rec.id], -rec.started, rec.id),
            )
            if not pool_ranked:
                break
            victims = choose_victims(self, job, pool_ranked, pool, mode="las", shares=None, levels=level_of)
            if victims:
                taken.update(v.job_id for v in victims)
                self._apply(job, victims)
        self._undo_tentative()

    def _gpus(self, need: Vec) -> float:
        gpu = self.e.gpu
        return float(need[gpu]) if gpu is not None else 1.0


def _victim_order(rec: RunningRec) -> tuple[int, float, str]:
    """Lowest priority first, then the most recently started (it loses the least work)."""
    return (rec.req.priority, -rec.started, rec.id)
