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

    def admit(self, endpoint: ModelEndpoint) -> list[FieldProblem]:
        """Problems that make the endpoint impossible to run here (checked before it is stored)."""
        ...

    def ensure(self, workload: WorkloadSpec) -> None:
        """Make the revision have exactly ``workload.replicas`` replicas (starting or stopping some)."""
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
