"""How a trace becomes a cluster: team quotas, and the durations the scheduler is told.

Quotas: the cluster's GPUs are split across the trace's teams in proportion to each team's share of total
GPU-time demand (largest-remainder rounding, so they sum to the cluster exactly; a team with a tiny share
may get 0 and only borrow). All teams are in one cohort with weight 1, no borrowing or lending limits.

Durations told to the scheduler (``expected_duration``): ``sjf`` gets the true duration (an oracle, as in
the papers it stands for). ``fair`` and ``fifo-backfill`` get ``history`` estimates by default: the mean
duration of the same team's already *finished* jobs of the same GPU count (else of any size; None before
the team's first job finishes), never the job's own. ``oracle`` gives them the truth instead.
"""

from __future__ import annotations

from collections import defaultdict

from pilothouse.scheduling.sim_trace import TraceJob
from pilothouse.scheduling.snapshot import GPU, Quota, TeamSpec

COHORT = "trace"


def proportional_quotas(jobs: list[TraceJob], gpus: int) -> dict[str, TeamSpec]:
    demand: dict[str, float] = defaultdict(float)
    for job in jobs:
        demand[job.team] += job.duration * job.gpus
    total = sum(demand.values()) or 1.0
    exact = {team: gpus * d / total for team, d in demand.items()}
    nominal = {team: int(value) for team, value in exact.items()}
    left = gpus - sum(nominal.values())
    for team in sorted(exact, key=lambda t: (-(exact[t] - nominal[t]), t))[:left]:
        nominal[team] += 1
    return {team: TeamSpec(team, {GPU: Quota(nominal[team])}, cohort=COHORT) for team in sorted(nominal)}


class DurationEstimator:
    """Mean finished duration per (team, GPU count), falling back to the team's mean over all sizes."""

    def __init__(self) -> None:
        self._by_size: dict[tuple[str, int], list[float]] = {}
        self._by_team: dict[str, list[float]] = {}

    def observe(self, team: str, gpus: int, duration: float) -> None:
        for acc in (
            self._by_size.setdefault((team, gpus), [0.0, 0.0]),
            self._by_team.setdefault(team, [0.0, 0.0]),
        ):
            acc[0] += duration
            acc[1] += 1

    def estimate(self, team: str, gpus: int) -> float | None:
        acc = self._by_size.get((team, gpus)) or self._by_team.get(team)
        return acc[0] / acc[1] if acc else None
