"""The pure half of the Job reconciler: from a job and its runtime attempt to the next action and status.

The queue decides *whether* a job may run (it writes ``Admitted`` or ``Preempting``); this plan makes the
runtime match and turns what the runtime observed into the job's lifecycle: started, succeeded, failed
(retried while ``failures <= maxRetries``, except past its deadline), preempted (requeued with its
retries kept), or lost in a control-plane crash (requeued).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pilothouse.api.job import Job, JobStatus
from pilothouse.api.meta import Condition, set_condition
from pilothouse.runtime.protocol import JobRunState

Action = Literal["none", "start", "stop", "forget"]


@dataclass(frozen=True)
class JobEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class JobPlan:
    action: Action
    status: JobStatus
    events: list[JobEvent] = field(default_factory=list)
    resources_changed: bool = False
    """The job took or gave back resources: the queue should run again."""


def _at(timestamp: float | None, fallback: datetime) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else fallback


def _finished(status: JobStatus, state: JobRunState, job: Job, now: datetime) -> JobPlan:
    status.exitCode = state.exit_code
    status.devices = []
    if state.phase == "Succeeded":
        status.phase, status.reason, status.message = "Succeeded", "Completed", "all workers exited 0"
        status.completionTime = _at(state.finished_at, now)
        return JobPlan(
            "forget", status, [JobEvent("Normal", "Completed", f"attempt {state.attempt} succeeded")], True
        )
    status.failures += 1
    retry = state.reason != "DeadlineExceeded" and status.failures <= job.spec.maxRetries
    detail = state.message or state.reason
    if retry:
        status.phase, status.reason = "Pending", "Retrying"
        status.message = (
            f"attempt {state.attempt} failed ({detail}); retry {status.failures} of {job.spec.maxRetries}"
        )
        return JobPlan("forget", status, [JobEvent("Warning", "Retrying", status.message)], True)
    status.phase, status.reason, status.message = "Failed", state.reason or "Error", detail
    status.completionTime = _at(state.finished_at, now)
    return JobPlan("forget", status, [JobEvent("Warning", status.reason, detail)], True)


def plan_job(job: Job, state: JobRunState | None, now: datetime) -> JobPlan:
    status = job.status.model_copy(deep=True)
    status.observedGeneration = job.metadata.generation
    phase = status.phase
    current = state is not None and state.attempt == status.attempts

    if phase == "Admitted":
        if current and state is not None:  # started before a crash: just record it
            status.phase, status.startTime = "Running", _at(state.started_at, now)
            status.devices = [",".join(w.devices) for w in state.workers]
            return JobPlan("none", status)
        return JobPlan("forget" if state is not None else "start", status)

    if phase == "Running":
        if not current or state is None:
            status.phase, status.reason = "Pending", "Lost"
            status.message = "the runtime lost the job's processes (control plane restart); requeued"
            return JobPlan(
                "forget" if state else "none", status, [JobEvent("Warning", "Lost", status.message)], True
            )
        if state.phase in ("Succeeded", "Failed"):
            return _finished(status, state, job, now)
        if state.phase == "Stopped":
            status.phase, status.reason, status.message = (
                "Pending",
                "Stopped",
                "workers stopped unexpectedly; requeued",
            )
            return JobPlan("forget", status, [JobEvent("Warning", "Stopped", status.message)], True)
        devices = [",".join(w.devices) for w in state.workers]
        if devices != status.devices:
            status.devices = devices
        return JobPlan("none", status)

    if phase == "Preempting":
        if current and state is not None and state.phase in ("Starting", "Running"):
            return JobPlan("stop", status)
        if current and state is not None and state.phase == "Terminating":
            return JobPlan("none", status)
        if current and state is not None and state.phase in ("Succeeded", "Failed"):
            return _finished(status, state, job, now)  # it finished on its own before the stop landed
        status.phase, status.reason = "Pending", "Preempted"
        status.preemptions += 1
        status.devices = []
        status.message = f"preempted ({job.status.message}); requeued with its retries kept"
        return JobPlan(
            "forget" if state else "none", status, [JobEvent("Warning", "Preempted", status.message)], True
        )

    # Pending or finished: nothing of this job should be running.
    if state is not None and state.phase in ("Starting", "Running"):
        return JobPlan("stop", status)
    if state is not None and state.phase != "Terminating":
        return JobPlan("forget", status)
    return JobPlan("none", status)


def with_condition(status: JobStatus, generation: int | None) -> JobStatus:
    """Mirror the phase into a ``Ready``-style condition set: Admitted, Running, Finished."""
    phase = status.phase
    conditions = status.conditions
    conditions = set_condition(
        conditions,
        Condition(
            type="Admitted",
            status="True" if phase in ("Admitted", "Running", "Preempting") else "False",
            reason=status.reason or phase,
            message=status.message,
            observedGeneration=generation,
        ),
    )
    conditions = set_condition(
        conditions,
        Condition(
            type="Finished",
            status="True" if phase in ("Succeeded", "Failed") else "False",
            reason=status.reason or phase,
            message=status.message,
            observedGeneration=generation,
        ),
    )
    status.conditions = conditions
    return status
