"""The Runtime contract: make N replicas of one revision of a model server exist, and report on them.

The contract is level-triggered and idempotent (the dstack ``Compute`` idea): ``ensure`` says how many
replicas of a revision should exist and may be called any number of times; ``remove`` of something
already gone succeeds. Runtimes never read the store: they get a ``WorkloadSpec`` and report
``ReplicaState``s; the controller decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pilothouse.api.errors import FieldProblem
from pilothouse.api.modelendpoint import ModelEndpoint, ModelSource, Resources


@dataclass(frozen=True)
class OwnerRef:
    kind: str
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class WorkloadSpec:
    """One revision of one endpoint, with the number of replicas it should have."""

    owner: OwnerRef
    revision: int
    replicas: int
    model: ModelSource
    resources: Resources
    model_name: str
    env: dict[str, str] = field(default_factory=dict)


ReplicaPhase = Literal["Pending", "Starting", "Ready", "Failed", "Terminating"]


@dataclass(frozen=True)
class ReplicaState:
    """What the runtime observes of one replica, as plain data."""

    id: str
    owner_uid: str
    revision: int
    phase: ReplicaPhase
    url: str | None = None
    pid: int | None = None
    restarts: int = 0
    devices: tuple[str, ...] = ()
    reason: str = ""
    """A CamelCase word for why the replica is in this phase (``ModelLoadFailed``, ``CrashLoopBackOff``)."""
    message: str = ""
    last_exit_code: int | None = None

    @property
    def ready(self) -> bool:
        return self.phase == "Ready"


class NotSupported(Exception):
    """The runtime cannot run this workload at all (e.g. a container image on the local runtime)."""


class Runtime(Protocol):
    """A place where model-server replicas run."""

    name: str
    runs_images: bool
    """Whether container images can run here (Kubernetes) or only commands and model files (local)."""

    def admit(self, endpoint: ModelEndpoint) -> list[FieldProblem]:
        """Problems that make the endpoint impossible to run here (checked before it is stored)."""
        ...

    def ensure(self, workload: WorkloadSpec) -> None:
        """Make the revision have exactly ``workload.replicas`` replicas (starting or stopping some)."""
        ...

    def stop_replicas(self, owner_uid: str, replica_ids: list[str]) -> None:
        """Stop these replicas (and forget them); unknown ids are ignored. The controller uses this to
        scale down *after* draining the replicas it chose; ``ensure`` with the lower count then finds
        nothing to stop."""
        ...

    def remove(self, owner_uid: str, revision: int | None = None) -> None:
        """Stop and forget the replicas of one revision, or of all revisions when ``revision`` is None."""
        ...

    def observe(self, owner_uid: str) -> list[ReplicaState]: ...

    def owners(self) -> set[str]:
        """Every owner uid the runtime has replicas for (the controller garbage-collects orphans)."""
        ...

    def log_files(self, owner_uid: str, replica: str | None = None) -> list[tuple[str, Path]]:
        """(replica id, log path) pairs, oldest replica first."""
        ...

    def follow_logs(self, owner_uid: str, replica: str | None = None) -> Iterator[str]: ...

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Register ``callback(owner_uid)`` to be called whenever a replica of that owner changes phase."""
        ...

    def close(self, stop_workloads: bool = True) -> None: ...


# -- jobs ------------------------------------------------------------------------------------------

JobRunPhase = Literal["Starting", "Running", "Succeeded", "Failed", "Terminating", "Stopped"]


@dataclass(frozen=True)
class JobRun:
    """One attempt of an admitted job: ``workers`` processes started together (a gang)."""

    owner: OwnerRef
    attempt: int
    workers: int
    command: list[str]
    """Empty for image jobs (their image's entrypoint runs; only runtimes with ``runs_images`` take them)."""
    resources: Resources
    """Per worker."""
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    active_deadline_seconds: int | None = None
    image: str | None = None


@dataclass(frozen=True)
class WorkerState:
    index: int
    pid: int | None
    devices: tuple[str, ...]
    exit_code: int | None


@dataclass(frozen=True)
class JobRunState:
    """What the runtime observes of a job's current attempt."""

    owner_uid: str
    attempt: int
    phase: JobRunPhase
    workers: tuple[WorkerState, ...]
    started_at: float | None = None
    """Wall-clock time (``time.time()``) the gang was started."""
    finished_at: float | None = None
    reason: str = ""
    """``Completed``, ``Error`` (a worker exited non-zero), ``DeadlineExceeded``, ``Stopped`` (preempted or cancelled)."""
    message: str = ""
    exit_code: int | None = None
    """The first non-zero worker exit code, or 0 when all succeeded."""


class InsufficientResources(Exception):
    """The runtime cannot start the gang now (devices not free); the queue should not have admitted it."""


@dataclass(frozen=True)
class HandoverSummary:
    """Every accelerator hand-over to a job worker since the runtime started: the device was released by
    its last holder (process tree gone, and where NVML works, no process left on it) -> the next job
    worker on it started."""

    count: int
    total_seconds: float
    max_seconds: float

    @property
    def mean_seconds(self) -> float:
        return self.total_seconds / self.count if self.count else 0.0


class JobRuntime(Protocol):
    """Where admitted jobs run. Implemented by the local runtime (processes) and, later, Kubernetes."""

    def capacity(self) -> dict[str, int]:
        """Total schedulable amount per resource: accelerators as counts, ``cpu`` in millicores, ``memory`` in bytes."""
        ...

    def handover_summary(self) -> HandoverSummary | None:
        """Hand-over latencies, where this runtime hands devices over itself (local); None where the
        cluster does (Kubernetes: the kubelet's device plugin)."""
        ...

    def nodes(self) -> list[dict[str, int]]:
        """Each schedulable node's amounts (as ``capacity``), where capacity is spread over nodes and one
        worker must fit on one; empty where all of it is one machine."""
        ...

    def start_job(self, run: JobRun) -> None:
        """Start every worker of the attempt (all or none); idempotent for the same (uid, attempt)."""
        ...

    def stop_job(self, owner_uid: str, grace_seconds: float) -> None:
        """SIGTERM every worker, wait up to the grace period, then SIGKILL; returns at once (asynchronous)."""
        ...

    def observe_job(self, owner_uid: str) -> JobRunState | None:
        """The current attempt's state, or None if the runtime has no attempt of that job."""
        ...

    def forget_job(self, owner_uid: str) -> None:
        """Drop a finished attempt's record (its processes are already gone); idempotent."""
        ...

    def job_owners(self) -> set[str]: ...

    def job_log_files(self, owner_uid: str, worker: int | None = None) -> list[tuple[str, Path]]: ...
