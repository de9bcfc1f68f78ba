"""The scheduler's whole world as plain, frozen data: what it is asked (a ``Snapshot``) and what it answers
(``Decisions``).

Kept free of pydantic and of any I/O so the queue controller, the simulator and the tests all hand the
core the same thing and get the same answer back: ``schedule`` is a pure function of a snapshot. The
controller turns API objects into these dataclasses; nothing here knows about HTTP, stores or clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

ResourceVector = Mapping[str, int]
"""Resource name -> amount: ``"nvidia.com/gpu"`` a count, ``"cpu"`` millicores, ``"memory"`` bytes."""

GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class Quota:
    nominal: int
    borrowing_limit: int | None = None
    """How far above nominal the team may go by borrowing; None = no limit (within the cohort's idle quota)."""
    lending_limit: int | None = None
    """How much of its idle nominal others may borrow; None = all of it."""


@dataclass(frozen=True)
class TeamSpec:
    name: str
    quotas: Mapping[str, Quota]
    """Resources without an entry have nominal 0 (only borrowable) if any team declares a quota for them."""
    cohort: str | None = None
    """Teams in one cohort lend each other idle quota; None = the team shares with nobody."""
    weight: float = 1.0


@dataclass(frozen=True)
class JobRequest:
    id: str
    team: str
    priority: int
    """Higher first within a team (built-in classes: low 100, normal 500, high 1000)."""
    submitted: float
    workers: int
    """Gang size: all workers are admitted together or none is."""
    per_worker: ResourceVector
    expected_duration: float | None = None
    attained_service: float = 0.0
    """GPU-seconds already received in earlier attempts (used by LAS)."""


@dataclass(frozen=True)
class RunningJob:
    request: JobRequest
    started: float
    preemptible: bool = True
    terminating: bool = False
    """Being preempted or cancelled: still holds its resources, must not be preempted again."""


@dataclass(frozen=True)
class Snapshot:
    now: float
    capacity: ResourceVector
    teams: Mapping[str, TeamSpec]
    running: Sequence[RunningJob]
    pending: Sequence[JobRequest]
    nominated: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Pending job -> the jobs an earlier decision preempted for it: once they are gone, the room they held
    goes to that job first (the caller carries this from one decision to the next)."""
    nodes: Sequence[ResourceVector] = ()
    """Each schedulable node's allocatable, where capacity is spread over nodes (Kubernetes): one worker
    runs on one node, so a worker no node can hold makes its job inadmissible. Empty: all of
    ``capacity`` is one machine (the local runtime)."""


@dataclass(frozen=True)
class Admit:
    job_id: str
    reason: str


@dataclass(frozen=True)
class Preempt:
    job_id: str
    reason: str
    for_job: str


@dataclass(frozen=True)
class Waiting:
    job_id: str
    position: int
    """1-based position in the order this policy would admit (global across teams)."""
    eta: float | None
    """Estimated start time on the snapshot's clock; None when it depends on a job of unknown duration."""
    reason: str


@dataclass(frozen=True)
class Inadmissible:
    """A pending job that cannot start however long it waits, as capacity and quotas are now: it needs more
    than the cluster has for jobs in all, or more than its team may ever hold (nominal plus what it may
    borrow). It is kept out of the order, so it neither holds a reservation (which would keep every other
    job waiting for room that never comes) nor counts toward its team's demand. Capacity or quotas that
    change make it admissible again at the next decision."""

    job_id: str
    reason: str


@dataclass(frozen=True)
class Decisions:
    admit: list[Admit] = field(default_factory=list)
    preempt: list[Preempt] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    inadmissible: list[Inadmissible] = field(default_factory=list)


class Policy(Protocol):
    name: str

    def schedule(self, snapshot: Snapshot) -> Decisions: ...


PolicyFactory = Callable[[], Policy]
