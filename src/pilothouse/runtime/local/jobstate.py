"""A job attempt on disk (``JobRecord``) and in memory (``Job``), and its translation to ``JobRunState``.

The record is what a restarted control plane needs to recognise the gang's processes (pid *and* create
time per worker, since pids are reused), to keep their devices, and to go on reporting how an attempt
ended until the controller forgets it. It is rewritten (atomically) at every change of phase or worker
exit, so a crash loses at most what happened since. One record per job: the runtime only ever keeps the
current attempt of a job.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from pilothouse.runtime.local.gpus import device_labels
from pilothouse.runtime.local.record_dir import JsonRecordDir
from pilothouse.runtime.protocol import JobRunPhase, JobRunState, OwnerRef, WorkerState

log = logging.getLogger(__name__)

JOB_RECORD_VERSION = 1
FINISHED: frozenset[str] = frozenset({"Succeeded", "Failed", "Stopped"})

EndPhase = Literal["Succeeded", "Failed", "Stopped"]


@dataclass(frozen=True)
class Ending:
    """How a gang is ending; decided once, reported as the phase once every worker's tree is gone and
    its devices are back in the pool."""

    phase: EndPhase
    reason: str
    message: str = ""
    exit_code: int | None = None


@dataclass
class WorkerRecord:
    index: int
    holder: str
    """The name its devices are allocated under."""
    marker: str
    """The value of ``PILOTHOUSE_JOB_WORKER`` in its environment (finds descendants that escaped)."""
    log_path: str
    devices: dict[str, list[str]] = field(default_factory=dict)
    pid: int | None = None
    create_time: float | None = None
    exited: bool = False
    exit_code: int | None = None
    """None when it exited unobserved (adopted) or has not exited."""


@dataclass
class JobRecord:
    owner: OwnerRef
    attempt: int
    command: list[str]
    env: dict[str, str]
    working_dir: str | None
    active_deadline_seconds: int | None
    master_port: int
    workers: list[WorkerRecord]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    phase: JobRunPhase = "Starting"
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    ending: Ending | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = JOB_RECORD_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        data = dict(data)
        data.pop("version", None)
        owner = OwnerRef(**data.pop("owner"))
        workers = [WorkerRecord(**w) for w in data.pop("workers")]
        ending = data.pop("ending", None)
        return cls(owner=owner, workers=workers, ending=Ending(**ending) if ending else None, **data)


class JobRecordStore(JsonRecordDir[JobRecord]):
    """One JSON file per job under ``<runtime_dir>/jobs/``, oldest first on load."""

    def __init__(self, directory: Path) -> None:
        super().__init__(
            directory,
            what="job",
            key=lambda r: r.owner.uid,
            decode=JobRecord.from_json,
            order=lambda r: (r.created_at, r.owner.uid),
        )


@dataclass(eq=False)
class Worker:
    record: WorkerRecord
    child: subprocess.Popen[bytes] | None = None
    """Our own child process (``poll()`` gives its exit status)."""
    adopted: psutil.Process | None = None
    """A process an earlier runtime started (watched with psutil; its exit status is unknowable)."""

    @property
    def running(self) -> bool:
        return self.child is not None or self.adopted is not None

    def state(self) -> WorkerState:
        r = self.record
        return WorkerState(index=r.index, pid=r.pid, devices=device_labels(r.devices), exit_code=r.exit_code)


@dataclass(eq=False)
class Job:
    record: JobRecord
    workers: list[Worker]
    finisher: threading.Thread | None = None
    """The thread stopping the gang (``ending`` is set); None before and once it is done."""
    trees_gone: bool = False
    """Every worker's process tree is gone (its devices may still be in hand-over)."""

    @property
    def uid(self) -> str:
        return self.record.owner.uid

    @property
    def attempt(self) -> int:
        return self.record.attempt

    @property
    def finished(self) -> bool:
        return self.record.phase in FINISHED

    @property
    def ending(self) -> Ending | None:
        return self.record.ending

    @property
    def holders(self) -> list[str]:
        return [w.record.holder for w in self.workers]

    def state(self) -> JobRunState:
        r = self.record
        return JobRunState(
            owner_uid=r.owner.uid,
            attempt=r.attempt,
            phase=r.phase,
            workers=tuple(w.state() for w in self.workers),
            started_at=r.started_at,
            finished_at=r.finished_at,
            reason=r.reason,
            message=r.message,
            exit_code=r.exit_code,
        )
