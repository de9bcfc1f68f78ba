"""The pending jobs, kept sorted and indexed so a scheduling cycle can stop as soon as nothing can fit.

Each queue (one per team for ``fair``, one global queue for the other policies) is a list sorted by the
policy's static key: the key of a job never changes while it waits (aging is folded into the key, see
``policies``), so insertion is a bisect and no cycle re-sorts. Two indexes let a cycle end early instead
of walking thousands of jobs that cannot start: the distinct request vectors with their counts ("does
anything fit in what is free?") and, per request vector, a lazy min-heap of expected durations ("does
anything fit *and* end before the reservation?"). On a GPU trace there are a few dozen distinct
vectors, so both answers cost microseconds.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pilothouse.scheduling.resources import Vec, fits
from pilothouse.scheduling.snapshot import JobRequest

INF = float("inf")
SLACK = 4


class PendingJob:
    __slots__ = ("dur", "id", "key", "need", "queue", "req", "team")

    def __init__(self, req: JobRequest, team: int, need: Vec, key: tuple[Any, ...], queue: int) -> None:
        self.req = req
        self.id = req.id
        self.team = team
        self.need = need
        self.dur = req.expected_duration
        self.key = key
        self.queue = queue


@dataclass
class _NeedBucket:
    count: int = 0
    durations: list[tuple[float, str]] = field(default_factory=list)
    keys: list[tuple[Any, ...]] = field(default_factory=list)
    """The bucket's jobs in queue order."""


class PendingQueues:
    def __init__(self, n_queues: int, n_teams: int, n_res: int) -> None:
        self.keys: list[list[tuple[Any, ...]]] = [[] for _ in range(n_queues)]
        self.jobs: dict[str, PendingJob] = {}
        self.by_need: dict[Vec, _NeedBucket] = {}
        self.team_buckets: list[dict[Vec, _NeedBucket]] = [{} for _ in range(n_teams)]
        self.changes = 0
        self.team_needs: list[dict[Vec, int]] = [{} for _ in range(n_teams)]
        self.team_demand: list[list[float]] = [[0.0] * n_res for _ in range(n_teams)]
        self._team_min: dict[int, Vec | None] = {}

    def add_queue(self) -> None:
        self.keys.append([])

    def add_team(self, n_res: int) -> None:
        self.team_buckets.append({})
        self.team_needs.append({})
        self.team_demand.append([0.0] * n_res)

    def add(self, job: PendingJob) -> None:
        if job.id in self.jobs:
            raise ValueError(f"job {job.id!r} is already pending")
        self.jobs[job.id] = job
        bisect.insort(self.keys[job.queue], job.key)
        self.changes += 1
        entry = (INF if job.dur is None else job.dur, job.id)
        for buckets in (self.by_need, self.team_buckets[job.team]):
            bucket = buckets.get(job.need)
            if bucket is None:
                bucket = buckets[job.need] = _NeedBucket()
            bucket.count += 1
            heapq.heappush(bucket.durations, entry)
            bisect.insort(bucket.keys, job.key)
        counts = self.team_needs[job.team]
        counts[job.need] = counts.get(job.need, 0) + 1
        self._team_min.pop(job.team, None)
        demand = self.team_demand[job.team]
        for r, amount in enumerate(job.need):
            demand[r] += amount

    def remove(self, job_id: str) -> PendingJob:
        job = self.jobs.pop(job_id)
        keys = self.keys[job.queue]
        del keys[bisect.bisect_left(keys, job.key)]
        self.changes += 1
        for buckets in (self.by_need, self.team_buckets[job.team]):
            bucket = buckets[job.need]
            bucket.count -= 1
            del bucket.keys[bisect.bisect_left(bucket.keys, job.key)]
            if bucket.count == 0:
                del buckets[job.need]
            elif len(bucket.durations) > 2 * bucket.count + 32:
                bucket.durations = [e for e in bucket.durations if self._valid(e, job.need)]
                heapq.heapify(bucket.durations)
        counts = self.team_needs[job.team]
        counts[job.need] -= 1
        if counts[job.need] == 0:
            del counts[job.need]
        self._team_min.pop(job.team, None)
        demand = self.team_demand[job.team]
        for r, amount in enumerate(job.need):
            demand[r] -= amount
        return job

    def __len__(self) -> int:
        return len(self.jobs)

    # -- early-exit questions -----------------------------------------------------------------------

    def any_fits(self, avail: Sequence[float], team: int | None = None) -> bool:
        buckets = self.by_need if team is None else self.team_buckets[team]
        return any(fits(need, avail) for need in buckets)

    def any_backfill(
        self, avail: Sequence[float], extra: Sequence[float], horizon: float, team: int | None = None
    ) -> bool:
        """Could any job (of ``team``) start now without delaying a reservation: fit in ``extra`` or end
        within ``horizon``."""
        buckets = self.by_need if team is None else self.team_buckets[team]
        for need, bucket in buckets.items():
            if not fits(need, avail):
                continue
            if fits(need, extra):
                return True
            heap = bucket.durations
            while heap and heap[0][1] not in self.jobs:
                heapq.heappop(heap)
            # A re-queued job id may sit in another bucket's heap too; a stale entry only makes this
            # answer "maybe", never a wrong "no".
            if heap and heap[0][0] <= horizon:
                return True
        return False

    def _valid(self, entry: tuple[float, str], need: Vec) -> bool:
        job = self.jobs.get(entry[1])
        return job is not None and job.need == need and (INF if job.dur is None else job.dur) == entry[0]

    def candidates(
        self, queue: int, avail: Sequence[float], limit_of: Callable[[Vec], float]
    ) -> list[tuple[Any, ...]]:
        """Keys of jobs of ``queue`` that fit ``avail`` with an expected duration of at most
        ``limit_of(need)`` (``inf``: any; negative: none), sorted; per request vector at most as many as
        could fit plus slack for jobs their quota will stop. Request vectors with no duration limit are
        taken from the head of their bucket; limited ones from the duration heap (visiting only entries within the limit, at most ``2 * bound + 8`` of them)."""
        buckets = self.by_need if len(self.keys) == 1 else self.team_buckets[queue]
        out: list[tuple[Any, ...]] = []
        unlimited: dict[Vec, int] = {}
        for need, bucket in buckets.items():
            if not fits(need, avail):
                continue
            limit = limit_of(need)
            if limit < 0:
                continue
            room = [a // n for n, a in zip(need, avail, strict=True) if n > 0]
            bound = int(min(room)) + SLACK if room else bucket.count
            if limit == INF:
                unlimited[need] = min(bound, bucket.count)
                continue
            heap, seen = bucket.durations, set()
            found: list[tuple[Any, ...]] = []
            stack = [0]
            while stack and len(found) < 2 * bound + 8:
                i = stack.pop()
                if i >= len(heap) or heap[i][0] > limit:
                    continue
                entry = heap[i]
                if entry[1] not in seen and self._valid(entry, need):
                    seen.add(entry[1])
                    found.append(self.jobs[entry[1]].key)
                stack.append(2 * i + 2)
                stack.append(2 * i + 1)
            out.extend(heapq.nsmallest(bound, found))
        for need, wanted in unlimited.items():
            out.extend(buckets[need].keys[:wanted])
        out.sort()
        return out

    def team_min_need(self, team: int) -> Vec | None:
        """Component-wise minimum of the team's pending requests (a lower bound on any of them)."""
        if team in self._team_min:
            return self._team_min[team]
        needs = list(self.team_needs[team])
        result = tuple(min(col) for col in zip(*needs, strict=True)) if needs else None
        self._team_min[team] = result
        return result
