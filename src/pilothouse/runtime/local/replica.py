"""The in-memory state of one replica, and its translation to the protocol's ``ReplicaState``.

The persisted ``ReplicaRecord`` says what the replica *is* (and survives the control plane); this object
adds what the supervisor has *observed* (phase, probe failures, backoff), which is rebuilt by probing after
a restart rather than trusted from disk.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field

import psutil

from pilothouse.runtime.local.gpus import device_labels
from pilothouse.runtime.local.records import ReplicaRecord
from pilothouse.runtime.protocol import ReplicaPhase, ReplicaState, WorkloadSpec


@dataclass(eq=False)
class Replica:
    record: ReplicaRecord
    workload: WorkloadSpec
    phase: ReplicaPhase = "Pending"
    reason: str = ""
    message: str = ""
    last_exit_code: int | None = None
    child: subprocess.Popen[bytes] | None = None
    """Our own child process (``poll()`` tells us when it exits, with its status)."""
    adopted: psutil.Process | None = None
    """A process started by an earlier runtime on the same directory (watched with psutil)."""
    readiness_url: str | None = None
    has_devices: bool = False
    started: bool = False
    generation: int = 0
    """Bumped at every start, so a probe answer about an earlier process is ignored."""
    next_start_at: float = 0.0
    backoff: float = 0.0
    ready_since: float | None = None
    probe_failures: int = 0
    last_probe_at: float = 0.0
    stopping: bool = False
    gone: threading.Event = field(default_factory=threading.Event)

    @property
    def id(self) -> str:
        return self.record.replica_id

    @property
    def owner_uid(self) -> str:
        return self.record.owner.uid

    @property
    def revision(self) -> int:
        return self.record.revision

    @property
    def running(self) -> bool:
        return self.child is not None or self.adopted is not None

    @property
    def pid(self) -> int | None:
        return self.record.pid if self.running else None

    def state(self) -> ReplicaState:
        return ReplicaState(
            id=self.id,
            owner_uid=self.owner_uid,
            revision=self.revision,
            phase=self.phase,
            url=self.record.url if self.running else None,
            pid=self.pid,
            restarts=self.record.restarts,
            devices=device_labels(self.record.devices),
            reason=self.reason,
            message=self.message,
            last_exit_code=self.last_exit_code,
        )
