"""Why each pending job waits, where it stands, and when it should start, in plain words.

Position is the job's place in the order the policy would admit if resources appeared (global across
teams; for ``fair`` the cross-team merge is replayed as if every job ahead were admitted, so teams take
turns by fair share exactly as they would). ETA plays that order forward against the running jobs'
expected ends (``started + expected_duration``): each job starts at the first moment what it needs is
free, no earlier than the job ahead of it. Quotas and backfill are ignored there, so it is an estimate;
it is None when a job depends on a release that is unknown (a running job with no expected duration, or
one past it). Every reason names the team and the resource that blocks it.

``inadmissible_reason`` is also asked once per submitted job by the engine: a job that cannot start
however long it waits (more than the cluster, a worker larger than any node, more than its team's
ceiling) is kept out of the order, and the reason is what the user reads.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pilothouse.scheduling.resources import amount, first_short, fits, relative
from pilothouse.scheduling.snapshot import Waiting

if TYPE_CHECKING:
    from pilothouse.scheduling.engine import CycleReport, Engine
    from pilothouse.scheduling.queues import PendingJob
    from pilothouse.scheduling.quota import QuotaBlock
    from pilothouse.scheduling.resources import Vec
    from pilothouse.scheduling.snapshot import JobRequest

INF = float("inf")


def inadmissible_reason(engine: Engine, team: int, req: JobRequest, need: Vec) -> str | None:
    """Why job ``req`` of ``team`` (needing ``need`` in all) cannot start however long it waits (as
    capacity, nodes and quotas are now), or None if it can, in time."""
    short = first_short(need, engine.capacity)
    worker = engine.space.vec(req.per_worker) if engine.nodes else None
    placeable = worker is None or any(fits(worker, node) for node in engine.nodes)
    if (
        short is None
        and placeable
        and (not engine.rules.quotas or engine.book.over_ceiling(team, need) is None)
    ):
        return None  # the common case, once per submitted job: keep it cheap
    names = engine.space.names
    team_name = engine.book.teams[team].name
    if short is None and worker is not None and not placeable:
        largest = [max(node[r] for node in engine.nodes) for r in range(len(names))]
        over = first_short(worker, largest)
        if over is not None:
            return (
                f"team {team_name}: cannot start here: each worker needs {amount(names[over], worker[over])}, "
                f"more than any node has (largest: {amount(names[over], largest[over])})"
            )
        wants = ", ".join(amount(names[r], n) for r, n in enumerate(worker) if n)
        return f"team {team_name}: cannot start here: each worker needs {wants} on one node, and no node has all of it"
    if short is not None:
        name = names[short]
        return (
            f"team {team_name}: cannot start here: needs {amount(name, need[short])}, "
            f"more than the cluster has for jobs in all ({amount(name, engine.capacity[short])})"
        )
    book = engine.book
    r = book.over_ceiling(team, need)
    assert r is not None
    name, nominal = names[r], book.nominal[team][r]
    if book.cohort_of[team] < 0:
        limit = f"its quota is {amount(name, nominal)} and it is in no cohort to borrow from"
    else:
        cohort = book.cohort_names[book.cohort_of[team]]
        borrow = book.ceiling(team, r) - nominal
        limit = (
            f"it may hold at most {amount(name, nominal + borrow)} "
            f"(nominal {nominal:g} + up to {borrow:g} borrowed in cohort {cohort})"
        )
    return f"team {team_name}: cannot start as configured: needs {amount(name, need[r])}; {limit}"


@dataclass(frozen=True)
class Block:
    kind: str
    """"quota", "capacity" or "reserved" (it would delay the reservation of ``head``)."""
    resource: int
    quota: QuotaBlock | None = None
    head: str | None = None


class Explainer:
    def __init__(self, engine: Engine, report: CycleReport, now: float) -> None:
        self.e = engine
        self.report = report
        self.now = now

    def waiting(self) -> list[Waiting]:
        order = self.order()
        etas = self.etas(order)
        return [
            Waiting(job.id, position, eta, self.reason(job))
            for position, (job, eta) in enumerate(zip(order, etas, strict=True), start=1)
        ]

    # -- order --------------------------------------------------------------------------------------

    def order(self) -> list[PendingJob]:
        q = self.e.queues
        if not self.e.rules.per_team:
            return [q.jobs[key[-1]] for key in q.keys[0]]
        book = self.e.book
        heap: list[tuple[tuple[Any, ...], int, int]] = []

        def push(team: int, i: int) -> None:
            job = q.jobs[q.keys[team][i][-1]]
            if book.within_nominal(team, job.need):
                heapq.heappush(heap, ((0, book.usage_share(team), job.key), team, i))
            else:
                heapq.heappush(heap, ((1, book.borrowed_share(team), job.key), team, i))

        for team, keys in enumerate(q.keys):
            if keys:
                push(team, 0)
        out: list[PendingJob] = []
        while heap:
            _, team, i = heapq.heappop(heap)
            job = q.jobs[q.keys[team][i][-1]]
            out.append(job)
            book.change(team, job.need, +1)
            if i + 1 < len(q.keys[team]):
                push(team, i + 1)
        for job in out:
            book.change(job.team, job.need, -1)
        return out

    # -- ETA ----------------------------------------------------------------------------------------

    def etas(self, order: list[PendingJob]) -> list[float | None]:
        now = self.now
        free = list(self.report.avail)
        releases: list[tuple[float, int, tuple[int, ...]]] = []
        for seq, rec in enumerate(self.e.running.values()):
            if rec.terminating:
                releases.append((now, seq, rec.need))
            elif rec.end is not None and rec.end > now:
                releases.append((rec.end, seq, rec.need))
        heapq.heapify(releases)
        seq = len(releases)
        t = now
        out: list[float | None] = []
        for job in order:
            while not fits(job.need, free) and releases:
                when, _, need = heapq.heappop(releases)
                t = max(t, when)
                for r, a in enumerate(need):
                    free[r] += a
            if not fits(job.need, free):
                out.append(None)
                continue
            out.append(t)
            for r, a in enumerate(job.need):
                free[r] -= a
            if job.dur is not None:
                seq += 1
                heapq.heappush(releases, (t + job.dur, seq, job.need))
        return out

    # -- reasons ------------------------------------------------------------------------------------

    def reason(self, job: PendingJob) -> str:
        e, rep = self.e, self.report
        team = e.book.teams[job.team].name
        names = e.space.names
        claims = rep.claims.get(job.id)
        if claims:
            r = self._main_resource(job)
            jobs = ", ".join(claims[:3]) + (f" and {len(claims) - 3} more" if len(claims) > 3 else "")
            noun = "job" if len(claims) == 1 else "jobs"
            return (
                f"team {team}: waiting for preempted {noun} {jobs} to release {amount(names[r], job.need[r])}"
            )
        block = rep.blocks.get(job.id)
        if block is None:
            block = self._block_now(job)
        if block is None:
            r = self._main_resource(job)
            need = amount(names[r], job.need[r])
            if rep.strict_stop is not None:
                return f"team {team}: behind job {rep.strict_stop} (strict FIFO: nothing passes the first job that does not fit); needs {need}"
            if rep.truncated:
                return f"team {team}: needs {need}; not examined this cycle (a cycle looks at {e.rules.scan_limit} jobs past the first that cannot start)"
            return f"team {team}: needs {need}; not started this cycle"
        r = block.resource
        need = amount(names[r], job.need[r])
        if block.kind == "quota":
            assert block.quota is not None
            return self._quota_reason(team, job, block.quota)
        if block.kind == "reserved":
            res = rep.reservation
            when = (
                relative(res.start - self.now)
                if res is not None and res.start < INF
                else "once jobs of unknown duration end"
            )
            return f"team {team}: needs {need}, which would delay job {block.head} (reserved to start {when})"
        text = (
            f"team {team}: needs {need}, {rep.avail[r]:g} free of {e.capacity[r]:g} {names[r]} in the cluster"
        )
        res = rep.reservation
        if res is not None and res.job_id == job.id:
            if res.start < INF:
                text += f"; resources reserved for it from {relative(res.start - self.now)}"
            else:
                text += "; resources reserved for it (start unknown: it waits on jobs of unknown duration)"
        if e.rules.blocking == "strict" and rep.strict_stop == job.id:
            text += "; strict FIFO: jobs behind it wait too"
        return text

    def _quota_reason(self, team: str, job: PendingJob, block: QuotaBlock) -> str:
        book = self.e.book
        name = self.e.space.names[block.resource]
        n = job.need[block.resource]
        nominal = book.nominal[job.team][block.resource]
        if block.kind == "alone":
            return f"team {team} at quota {block.used:g}/{nominal:g} {name} and in no cohort to borrow from; job needs {n:g} more"
        if block.kind == "limit":
            return f"team {team} at its borrowing limit: {block.used:g}/{block.limit:g} {name} (nominal {nominal:g}); job needs {n:g} more"
        cohort = book.cohort_names[book.cohort_of[job.team]]
        state = (
            f"at quota {block.used:g}/{nominal:g} {name}"
            if block.used <= nominal
            else f"borrowing: {block.used:g} {name} used, nominal {nominal:g}"
        )
        return f"team {team} {state}; cohort {cohort} has {block.lendable:g} {name} free to lend; job needs {n:g}"

    def _block_now(self, job: PendingJob) -> Block | None:
        e = self.e
        if e.rules.quotas:
            quota = e.book.check(job.team, job.need)
            if quota is not None:
                return Block("quota", quota.resource, quota=quota)
        short = first_short(job.need, self.report.avail)
        if short is not None:
            return Block("capacity", short)
        res = self.report.reservation
        if res is not None and res.job_id != job.id:
            short = first_short(job.need, res.extra)
            return Block(
                "reserved", short if short is not None else self._main_resource(job), head=res.job_id
            )
        return None

    def _main_resource(self, job: PendingJob) -> int:
        gpu = self.e.gpu
        if gpu is not None and job.need[gpu]:
            return gpu
        used = [r for r, n in enumerate(job.need) if n]
        return used[0] if used else 0
