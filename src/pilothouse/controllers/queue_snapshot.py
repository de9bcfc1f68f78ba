"""From stored Teams and Jobs to the scheduler's ``Snapshot`` — a pure translation, tested on its own.

Units are normalised here once (accelerators as counts, cpu in millicores, memory in bytes), so the
scheduler core deals in integers only. When no Team exists at all (a laptop, a single GPU box) every
namespace becomes an implicit team in one shared cohort with no nominal quota, so jobs simply share
the machine fairly; once Teams exist, a job whose namespace has no Team waits with reason ``NoTeam``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pilothouse.api.job import HOLDING_PHASES, Job
from pilothouse.api.modelendpoint import Resources
from pilothouse.api.quantity import parse_quantity
from pilothouse.api.team import BUILTIN_PRIORITY_CLASSES, Team
from pilothouse.scheduling.snapshot import JobRequest, Quota, RunningJob, Snapshot, TeamSpec

IMPLICIT_COHORT = "implicit"


def quantity_units(resource: str, text: str) -> int:
    """A quantity in the scheduler's integer unit for that resource."""
    value = parse_quantity(text)
    if resource == "cpu":
        return math.ceil(value * 1000)
    return math.ceil(value)


def resource_vector(resources: Resources) -> dict[str, int]:
    vector = {name: count for name, count in resources.accelerators.items() if count}
    if resources.cpu is not None:
        vector["cpu"] = quantity_units("cpu", resources.cpu)
    if resources.memory is not None:
        vector["memory"] = quantity_units("memory", resources.memory)
    return vector


def team_spec(team: Team) -> TeamSpec:
    quotas = {
        name: Quota(
            nominal=quantity_units(name, q.nominal),
            borrowing_limit=None if q.borrowingLimit is None else quantity_units(name, q.borrowingLimit),
            lending_limit=None if q.lendingLimit is None else quantity_units(name, q.lendingLimit),
        )
        for name, q in team.spec.quotas.items()
    }
    return TeamSpec(name=team.metadata.name, quotas=quotas, cohort=team.spec.cohort, weight=team.spec.weight)


def job_id(job: Job) -> str:
    return f"{job.metadata.namespace}/{job.metadata.name}"


def job_request(job: Job) -> JobRequest:
    created = job.metadata.creationTimestamp
    assert created is not None, "stored jobs have a creation time"
    return JobRequest(
        id=job_id(job),
        team=job.metadata.namespace,
        priority=BUILTIN_PRIORITY_CLASSES[job.spec.priorityClassName],
        submitted=created.timestamp(),
        workers=job.spec.workers,
        per_worker=resource_vector(job.spec.resources),
        expected_duration=float(job.spec.expectedDurationSeconds)
        if job.spec.expectedDurationSeconds
        else None,
    )


@dataclass(frozen=True)
class QueueInputs:
    snapshot: Snapshot
    without_team: list[Job]
    """Pending jobs whose namespace has no Team (only when Teams exist)."""
    disallowed_priority: list[Job]
    """Pending jobs using a priority class their team does not allow."""
    budget_held: list[tuple[Job, str]] = field(default_factory=list)
    """Pending jobs of teams whose budget holds new jobs, with the budget's reason (cost integration)."""


def build_snapshot(
    now: float,
    capacity: Mapping[str, int],
    teams: Sequence[Team],
    jobs: Sequence[Job],
    held_teams: Mapping[str, str] | None = None,
    nodes: Sequence[Mapping[str, int]] = (),
) -> QueueInputs:
    """``held_teams``: team -> reason, for teams whose budget holds new jobs (never given to the scheduler)."""
    held_teams = held_teams or {}
    specs = {t.metadata.name: team_spec(t) for t in teams}
    allowed = {t.metadata.name: set(t.spec.priorityClasses) for t in teams}
    implicit = not teams
    if implicit:
        for job in jobs:
            ns = job.metadata.namespace
            specs.setdefault(ns, TeamSpec(name=ns, quotas={}, cohort=IMPLICIT_COHORT))
    running: list[RunningJob] = []
    pending: list[Job] = []
    without_team: list[Job] = []
    disallowed: list[Job] = []
    budget_held: list[tuple[Job, str]] = []
    for job in jobs:
        if job.status.phase in HOLDING_PHASES:
            started = job.status.admittedTime or job.status.startTime or job.metadata.creationTimestamp
            assert started is not None
            running.append(
                RunningJob(
                    job_request(job),
                    started=started.timestamp(),
                    terminating=job.status.phase == "Preempting",
                )
            )
        elif job.status.phase == "Pending":
            if job.metadata.namespace not in specs:
                without_team.append(job)
            elif not implicit and job.spec.priorityClassName not in allowed[job.metadata.namespace]:
                disallowed.append(job)
            elif job.metadata.namespace in held_teams:  # cost: the team's budget holds new jobs
                budget_held.append((job, held_teams[job.metadata.namespace]))
            else:
                pending.append(job)
    snapshot = Snapshot(
        now=now,
        capacity=dict(capacity),
        teams=specs,
        running=running,
        pending=[job_request(j) for j in pending],
        nodes=[dict(node) for node in nodes],
    )
    return QueueInputs(snapshot, without_team, disallowed, budget_held)
