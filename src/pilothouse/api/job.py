"""``Job``: a training or batch job that waits in its team's queue until the scheduler admits it.

A job asks for resources *per worker* and a number of workers (a gang: all start together or none do).
Its status carries what users ask most — where am I in the queue, when will I start, and why am I
waiting — in plain words.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from pilothouse.api.meta import API_VERSION, Condition, ObjectMeta, StrictModel
from pilothouse.api.modelendpoint import Resources
from pilothouse.api.team import BUILTIN_PRIORITY_CLASSES

JobPhase = Literal["Pending", "Admitted", "Running", "Preempting", "Succeeded", "Failed"]
FINISHED_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed"})
HOLDING_PHASES: frozenset[str] = frozenset({"Admitted", "Running", "Preempting"})
"""Phases in which a job holds (or is about to hold) its resources."""
INADMISSIBLE = "Inadmissible"
"""Reason of a pending job that cannot start however long it waits, as capacity and quotas are now (more
than the cluster has for jobs, a worker larger than any node, or more than its team may ever hold);
Kueue's word for the same state."""


class JobSpec(StrictModel):
    command: list[str] | None = Field(
        default=None, description="What each worker runs (local and Kubernetes)"
    )
    image: str | None = Field(default=None, description="Container image (Kubernetes runtime only)")
    env: dict[str, str] = Field(default_factory=dict)
    workingDir: str | None = None
    workers: int = Field(
        default=1, ge=1, le=1024, description="Gang size: all workers start together or none"
    )
    resources: Resources = Field(default_factory=Resources, description="Per worker")
    priorityClassName: str = "normal"
    maxRetries: int = Field(
        default=0, ge=0, le=100, description="Restarts after a failure (preemptions don't count)"
    )
    activeDeadlineSeconds: int | None = Field(default=None, ge=1)
    preemptionGracePeriodSeconds: int = Field(default=30, ge=0, le=3600)
    expectedDurationSeconds: int | None = Field(
        default=None,
        ge=1,
        description="Used for ETAs and backfill; a job running past it is not trusted again",
    )

    @model_validator(mode="after")
    def _something_to_run(self) -> JobSpec:
        if self.priorityClassName not in BUILTIN_PRIORITY_CLASSES:
            known = ", ".join(BUILTIN_PRIORITY_CLASSES)
            raise ValueError(f"priorityClassName: unknown class {self.priorityClassName!r} (known: {known})")
        if (self.command is None) == (self.image is None):
            raise ValueError("exactly one of command or image must be set")
        if self.command is not None and not (self.command and all(self.command)):
            raise ValueError("command must be a non-empty list of non-empty strings")
        if self.image is not None and (not self.image or any(c.isspace() for c in self.image)):
            raise ValueError("image must be a non-empty image reference without spaces")
        return self


class JobStatus(StrictModel):
    observedGeneration: int | None = None
    phase: JobPhase = "Pending"
    reason: str = ""
    message: str = Field(default="", description="Why it waits or how it ended, in plain words")
    queuePosition: int | None = None
    estimatedStartTime: datetime | None = None
    admittedTime: datetime | None = None
    startTime: datetime | None = None
    completionTime: datetime | None = None
    attempts: int = Field(default=0, description="Times the job was started (the runtime's attempt number)")
    failures: int = 0
    preemptions: int = 0
    exitCode: int | None = None
    devices: list[str] = Field(default_factory=list, description="Accelerators held, per worker comma-joined")
    conditions: list[Condition] = Field(default_factory=list)


class Job(StrictModel):
    apiVersion: Literal["pilothouse.dev/v1alpha1"] = API_VERSION
    kind: Literal["Job"] = "Job"
    metadata: ObjectMeta
    spec: JobSpec
    status: JobStatus = Field(default_factory=JobStatus)
