"""Builders for scheduler snapshots, shared by the scheduling tests."""

from __future__ import annotations

from pilothouse.scheduling import GPU, JobRequest, Quota, RunningJob, Snapshot, TeamSpec


def team(
    name: str,
    nominal: int,
    cohort: str | None = "c",
    borrow: int | None = None,
    lend: int | None = None,
    weight: float = 1.0,
) -> TeamSpec:
    return TeamSpec(name, {GPU: Quota(nominal, borrow, lend)}, cohort=cohort, weight=weight)


def job(
    job_id: str,
    team_name: str,
    gpus: int = 1,
    submitted: float = 0.0,
    duration: float | None = 100.0,
    priority: int = 500,
    workers: int = 1,
) -> JobRequest:
    return JobRequest(job_id, team_name, priority, submitted, workers, {GPU: gpus}, duration)


def running(
    req: JobRequest, started: float = 0.0, preemptible: bool = True, terminating: bool = False
) -> RunningJob:
    return RunningJob(req, started, preemptible, terminating)


def snap(
    capacity: int,
    teams: list[TeamSpec],
    run: list[RunningJob] | None = None,
    pending: list[JobRequest] | None = None,
    now: float = 10.0,
) -> Snapshot:
    return Snapshot(now, {GPU: capacity}, {t.name: t for t in teams}, run or [], pending or [])


def gpus_of(req: JobRequest) -> int:
    return req.per_worker.get(GPU, 0) * req.workers
