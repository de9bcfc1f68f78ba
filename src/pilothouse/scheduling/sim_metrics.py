"""What a simulated run is judged by: job completion time, waiting, utilization, and fairness over time.

Definitions (all on the virtual clock): JCT = finish - submit; wait = first start - submit; makespan = last
finish - first submit; utilization = useful GPU-seconds (duration x GPUs of every job, restart overhead
not counted) / (GPUs x makespan); it is sensitive to when the last long jobs start (one 350-hour job
starting 50 hours later moves it by 1.5 points). "Busy while waiting" is the direct measure of "GPUs never
sit idle while work waits": GPUs held / GPUs, integrated over the time at least one job was waiting.
"Busy while arriving" is GPUs held / GPUs from the first submission to the last: the part of the run in
which the trace's workload is live, the same window for every policy (busy-while-waiting's window depends
on the policy). It leaves out the drain after the last arrival, which sets the makespan, and which a
cluster with a steady stream of new work never reaches; a trace whose jobs all arrive at once has no
such window, and then it equals utilization.
Fairness is measured against the fair share the core computes
(``fairshare``) for every team *while it has waiting jobs*: per team-hour, the GPU-seconds it held
divided by the GPU-seconds of its fair share, over the part of that hour it had jobs waiting. A
team-hour "below target" is one under 90% (the issue's target is zero such hours); "below by more than
one job" also credits the team with one more of its smallest waiting job over the time it waited (the
"up to one job" relaxation of fair division, EF1), to separate job granularity from unfairness. Jain's index is over
each team's whole-run ratio of the same two integrals, capped at 1 (1.0 = every team got all of its fair
share while it waited; the cap keeps a team with a near-zero share, which one job puts thousands of times
over it, from dominating the index). Share vs entitlement compares each team's share of all GPU-seconds delivered with its
share of nominal quota.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pilothouse.scheduling.sim_run import SimRun
from pilothouse.scheduling.snapshot import GPU

HOUR = 3600.0
TARGET = 0.9


@dataclass(frozen=True)
class TeamFairness:
    team: str
    entitlement: float
    """Nominal GPUs / cluster GPUs."""
    share: float
    """This team's GPU-seconds / all GPU-seconds delivered."""
    fair_ratio: float | None
    """GPU-seconds held / fair-share GPU-seconds, while it had jobs waiting (None: it never waited)."""
    hours_below: int
    hours_waiting: int


@dataclass(frozen=True)
class Metrics:
    policy: str
    gpus: int
    jobs: int
    dropped: int
    avg_jct_h: float
    p99_jct_h: float
    avg_wait_h: float
    makespan_h: float
    utilization: float
    busy_while_waiting: float
    """Fraction of GPUs held, over the time at least one job was waiting."""
    busy_while_arriving: float
    """Fraction of GPUs held from the first submission to the last."""
    jain: float
    team_hours_below: float
    """Fraction of team-hours with waiting jobs in which the team got < 90% of its fair share."""
    team_hours_below_one_job: float
    """The same, counting each team as also holding one more of its smallest waiting job ("up to one
    job", like EF1 in fair division): what is left once job granularity is forgiven."""
    hours_any_below: float
    """Fraction of hours in which at least one team with waiting jobs got < 90% of its fair share."""
    preemptions: int
    cycles: int
    admissions: int
    wall_s: float
    admissions_per_s: float
    estimates: str
    teams: list[TeamFairness]

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["teams"] = [dict(t.__dict__) for t in self.teams]
        return out


def measure(run: SimRun) -> Metrics:
    done = [o for o in run.outcomes if o.finish >= 0]
    jct = np.array([o.finish - o.job.submit for o in done]) if done else np.zeros(1)
    wait = np.array([o.first_start - o.job.submit for o in done]) if done else np.zeros(1)
    first = min((o.job.submit for o in run.outcomes), default=0.0)
    last = max((o.finish for o in done), default=first)
    makespan = max(last - first, 1e-9)
    useful = sum(o.job.duration * o.job.gpus for o in done)
    utilization = useful / (run.gpus * makespan)
    names = sorted(run.teams)
    delivered = {name: 0.0 for name in names}
    for o in done:
        delivered[o.job.team] += o.job.duration * o.job.gpus
    total = sum(delivered.values()) or 1.0
    held, owed, below, waited, hours_any, hours_total, below_one = _fairness(run, len(names))
    teams = []
    ratios = []
    for i, name in enumerate(names):
        ratio = held[i] / owed[i] if owed[i] > 0 else None
        if ratio is not None:
            ratios.append(min(ratio, 1.0))
        teams.append(
            TeamFairness(
                team=name,
                entitlement=run.teams[name].quotas[GPU].nominal / run.gpus,
                share=delivered[name] / total,
                fair_ratio=ratio,
                hours_below=int(below[i]),
                hours_waiting=int(waited[i]),
            )
        )
    squares = sum(r * r for r in ratios)
    # Jain's index measures equality: no ratios, or all of them 0, is equal (and would be 0 / 0).
    jain = float(sum(ratios) ** 2 / (len(ratios) * squares)) if squares > 0 else 1.0
    return Metrics(
        policy=run.policy,
        gpus=run.gpus,
        jobs=len(done),
        dropped=run.dropped,
        avg_jct_h=float(jct.mean()) / HOUR,
        p99_jct_h=float(np.percentile(jct, 99)) / HOUR,
        avg_wait_h=float(wait.mean()) / HOUR,
        makespan_h=makespan / HOUR,
        utilization=utilization,
        busy_while_waiting=_busy_while_waiting(run),
        busy_while_arriving=_busy_while_arriving(run, first, utilization),
        jain=jain,
        team_hours_below=float(below.sum() / waited.sum()) if waited.sum() else 0.0,
        team_hours_below_one_job=float(below_one / waited.sum()) if waited.sum() else 0.0,
        hours_any_below=hours_any / hours_total if hours_total else 0.0,
        preemptions=run.preemptions,
        cycles=run.cycles,
        admissions=run.admissions,
        wall_s=run.wall_s,
        admissions_per_s=run.admissions / run.wall_s if run.wall_s > 0 else math.inf,
        estimates=run.estimates,
        teams=teams,
    )


def _busy_while_waiting(run: SimRun) -> float:
    tl = run.timeline
    if len(tl.times) < 2:
        return 1.0
    dt = np.diff(np.asarray(tl.times))
    held = np.asarray(tl.usage).sum(axis=1)[:-1]
    waited = np.any(np.asarray(tl.waiting, dtype=bool), axis=1)[:-1]
    span = float((dt * waited).sum())
    return float((held * dt * waited).sum()) / (run.gpus * span) if span > 0 else 1.0


def _busy_while_arriving(run: SimRun, first: float, utilization: float) -> float:
    last = max((o.job.submit for o in run.outcomes), default=first)
    tl = run.timeline
    if last <= first or len(tl.times) < 2:
        return utilization
    t = np.asarray(tl.times)
    held = np.asarray(tl.usage).sum(axis=1)
    start = np.clip(t[:-1], first, last)
    end = np.clip(t[1:], first, last)
    return float((held[:-1] * (end - start)).sum()) / (run.gpus * (last - first))


def _fairness(run: SimRun, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """Integrate the piecewise-constant timeline per team and per hour."""
    tl = run.timeline
    zeros = np.zeros(n)
    if len(tl.times) < 2:
        return zeros, zeros, zeros, zeros, 0, 0, 0
    t = np.asarray(tl.times)
    usage = np.asarray(tl.usage)
    fair = np.asarray(tl.fair)
    waiting = np.asarray(tl.waiting, dtype=bool)
    marks = np.arange(math.ceil(t[0] / HOUR), math.floor(t[-1] / HOUR) + 1) * HOUR
    grid = np.union1d(t, marks)
    row = np.searchsorted(t, grid[:-1], side="right") - 1
    dt = np.diff(grid)
    hour = ((grid[:-1] - t[0]) // HOUR).astype(int)
    mask = waiting[row]
    held_seg = usage[row] * dt[:, None] * mask
    owed_seg = fair[row] * dt[:, None] * mask
    n_hours = int(hour.max()) + 1
    extra_seg = np.asarray(tl.smallest)[row] * dt[:, None] * mask
    held_h = np.zeros((n_hours, n))
    owed_h = np.zeros((n_hours, n))
    extra_h = np.zeros((n_hours, n))
    np.add.at(held_h, hour, held_seg)
    np.add.at(owed_h, hour, owed_seg)
    np.add.at(extra_h, hour, extra_seg)
    counted = owed_h > 1e-6 * HOUR
    below_h = counted & (held_h < TARGET * owed_h - 1e-9)
    below_one = int((counted & (held_h + extra_h < TARGET * owed_h - 1e-9)).sum())
    hours_total = int(counted.any(axis=1).sum())
    hours_any = int(below_h.any(axis=1).sum())
    return (
        held_h.sum(axis=0),
        owed_h.sum(axis=0),
        below_h.sum(axis=0),
        counted.sum(axis=0),
        hours_any,
        hours_total,
        below_one,
    )
