"""The trace-driven simulator: a virtual clock that replays submissions and completions through the same
``Engine`` that backs ``schedule(snapshot)``.

The engine is called once per distinct event time (all arrivals and completions at that second are
applied first, then one cycle), and again at the same time after preemptions, since a preempted job
is taken to stop at once. A preempted job keeps its original submission time, goes back to its queue with
its attained service (GPU-seconds) raised, and later resumes with the work it had left plus a fixed
restart overhead (30 s, the default preemption grace period), i.e. jobs checkpoint when preempted and
lose nothing else; the preemption count is reported so this optimism is visible.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

from pilothouse.scheduling.engine import Engine
from pilothouse.scheduling.policies import RULES
from pilothouse.scheduling.sim_setup import DurationEstimator, proportional_quotas
from pilothouse.scheduling.sim_trace import TraceJob
from pilothouse.scheduling.snapshot import GPU, JobRequest, TeamSpec

RESTART_OVERHEAD_S = 30.0
MAX_CYCLES_PER_INSTANT = 8
PRIORITY = 500


@dataclass
class JobOutcome:
    job: TraceJob
    first_start: float = -1.0
    finish: float = -1.0
    preemptions: int = 0


@dataclass
class Timeline:
    """One row per scheduling instant (after its decisions): per-team GPUs in use, fair share, waiting."""

    times: list[float] = field(default_factory=list)
    usage: list[list[float]] = field(default_factory=list)
    fair: list[list[float]] = field(default_factory=list)
    waiting: list[list[bool]] = field(default_factory=list)
    smallest: list[list[float]] = field(default_factory=list)
    """GPUs of each team's smallest waiting job (0: none waits)."""


@dataclass
class SimRun:
    policy: str
    gpus: int
    teams: dict[str, TeamSpec]
    outcomes: list[JobOutcome]
    dropped: int
    preemptions: int
    cycles: int
    admissions: int
    wall_s: float
    timeline: Timeline
    estimates: str


def simulate(
    jobs: list[TraceJob], gpus: int, policy: str = "fair", estimates: str = "history", record: bool = True
) -> SimRun:
    """Replay ``jobs`` (sorted by submission) on ``gpus`` GPUs under ``policy``."""
    if policy not in RULES:
        raise ValueError(f"unknown scheduling policy {policy!r} (known: {', '.join(RULES)})")
    if gpus <= 0:
        raise ValueError("gpus must be positive")
    started_wall = time.perf_counter()
    kept = [job for job in jobs if job.gpus <= gpus]
    sim = _Sim(kept, gpus, policy, oracle=policy == "sjf" or estimates == "oracle")
    sim.run(record)
    return SimRun(
        policy=policy,
        gpus=gpus,
        teams=sim.teams,
        outcomes=list(sim.outcomes.values()),
        dropped=len(jobs) - len(kept),
        preemptions=sim.preemptions,
        cycles=sim.cycles,
        admissions=sim.admissions,
        wall_s=time.perf_counter() - started_wall,
        timeline=sim.timeline,
        estimates="oracle" if sim.oracle else estimates,
    )


class _Sim:
    def __init__(self, jobs: list[TraceJob], gpus: int, policy: str, oracle: bool) -> None:
        self.jobs = jobs
        self.teams = proportional_quotas(jobs, gpus)
        self.engine = Engine(RULES[policy], {GPU: gpus}, self.teams)
        self.oracle = oracle
        self.estimator = DurationEstimator()
        self.outcomes = {job.id: JobOutcome(job) for job in jobs}
        self.remaining = {job.id: job.duration for job in jobs}
        self.attained: dict[str, float] = {}
        self.version: dict[str, int] = {}
        self.since: dict[str, float] = {}
        self.completions: list[tuple[float, int, str, int]] = []
        self.seq = 0
        self.timeline = Timeline()
        self.team_of = {name: i for i, name in enumerate(sorted(self.teams))}
        self.preemptions = self.cycles = self.admissions = 0

    def submit(self, job: TraceJob) -> None:
        expected = self.remaining[job.id] if self.oracle else self.estimator.estimate(job.team, job.gpus)
        req = JobRequest(
            id=job.id,
            team=job.team,
            priority=PRIORITY,
            submitted=job.submit,
            workers=job.gpus,
            per_worker={GPU: 1} if job.gpus else {},
            expected_duration=expected,
            attained_service=self.attained.get(job.id, 0.0),
        )
        self.engine.submit(req)

    def run(self, record: bool) -> None:
        jobs, completions = self.jobs, self.completions
        i = 0
        while i < len(jobs) or completions:
            now = min(
                jobs[i].submit if i < len(jobs) else float("inf"),
                completions[0][0] if completions else float("inf"),
            )
            while completions and completions[0][0] <= now:
                _, _, job_id, ver = heapq.heappop(completions)
                if self.version.get(job_id) == ver:
                    self.engine.release(job_id)
                    outcome = self.outcomes[job_id]
                    outcome.finish = now
                    self.estimator.observe(outcome.job.team, outcome.job.gpus, outcome.job.duration)
            while i < len(jobs) and jobs[i].submit <= now:
                self.submit(jobs[i])
                i += 1
            self.decide(now)
            if record:
                _record(self.engine, self.timeline, now, self.team_of)

    def decide(self, now: float) -> None:
        for _ in range(MAX_CYCLES_PER_INSTANT):
            decisions = self.engine.cycle(now)
            self.cycles += 1
            for admit in decisions.admit:
                self.start(admit.job_id, now)
            if not decisions.preempt:
                return
            for preempt in decisions.preempt:
                self.stop(preempt.job_id, now)

    def start(self, job_id: str, now: float) -> None:
        self.admissions += 1
        outcome = self.outcomes[job_id]
        if outcome.first_start < 0:
            outcome.first_start = now
        self.since[job_id] = now
        ver = self.version.get(job_id, 0) + 1
        self.version[job_id] = ver
        self.seq += 1
        heapq.heappush(self.completions, (now + self.remaining[job_id], self.seq, job_id, ver))

    def stop(self, job_id: str, now: float) -> None:
        """A preempted job stops at once and goes back to its queue with the work it has left."""
        self.preemptions += 1
        self.engine.release(job_id)
        self.version[job_id] += 1
        outcome = self.outcomes[job_id]
        outcome.preemptions += 1
        ran = now - self.since.pop(job_id)
        self.remaining[job_id] += RESTART_OVERHEAD_S - ran
        self.attained[job_id] = self.attained.get(job_id, 0.0) + ran * outcome.job.gpus
        self.submit(outcome.job)


def _record(engine: Engine, timeline: Timeline, now: float, team_of: dict[str, int]) -> None:
    """Per-team GPU use, fair share and whether it has waiting jobs, indexed like ``team_of``."""
    book = engine.book
    gpu = engine.space.index[GPU]
    n = len(team_of)
    usage = [0.0] * n
    fair = [0.0] * n
    waiting = [False] * n
    smallest = [0.0] * n
    shares = engine.shares()
    for index, team in enumerate(book.teams):
        slot = team_of.get(team.name)
        if slot is None:
            continue
        usage[slot] = book.usage[index][gpu]
        fair[slot] = shares[index][gpu]
        waiting[slot] = bool(engine.queues.team_needs[index])
        if waiting[slot]:
            least = engine.queues.team_min_need(index)
            smallest[slot] = float(least[gpu]) if least is not None else 0.0
    if timeline.times and timeline.times[-1] == now:
        timeline.usage[-1], timeline.fair[-1], timeline.waiting[-1] = usage, fair, waiting
        timeline.smallest[-1] = smallest
        return
    timeline.times.append(now)
    timeline.usage.append(usage)
    timeline.fair.append(fair)
    timeline.waiting.append(waiting)
    timeline.smallest.append(smallest)
