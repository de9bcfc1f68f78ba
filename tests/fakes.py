"""An in-memory Runtime for controller and API tests: injected through the protocol, never patched in.

Tests drive replica phases by hand (``set_phase``), which is what makes controller behaviour — rollouts,
failures, garbage collection — checkable in milliseconds and without processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from pilothouse.api.errors import FieldProblem
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.runtime.protocol import (
    HandoverSummary,
    InsufficientResources,
    JobRun,
    JobRunPhase,
    JobRunState,
    NotSupported,
    ReplicaPhase,
    ReplicaState,
    WorkerState,
    WorkloadSpec,
)


class FakeRuntime:
    name = "fake"
    runs_images = False

    def __init__(self) -> None:
        self.replicas: dict[str, ReplicaState] = {}
        self.ensured: list[WorkloadSpec] = []
        self.removed: list[tuple[str, int | None]] = []
        self.fail_for: set[str] = set()
        self.admission_problems: list[FieldProblem] = []
        self._callbacks: list[Callable[[str], None]] = []
        self.gpus = 0
        self.node_shapes: list[dict[str, int]] = []
        self.handovers: HandoverSummary | None = None
        """Per-node amounts (``nodes()``); empty: one machine, as the local runtime."""
        self.job_runs: dict[str, JobRunState] = {}
        self.started_runs: list[JobRun] = []
        self.stop_requests: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._counter = 0

    # -- protocol ------------------------------------------------------------------------------

    def admit(self, endpoint: ModelEndpoint) -> list[FieldProblem]:
        if endpoint.spec.model.image:
            return [FieldProblem("spec.model.image", "images need Kubernetes")]
        return list(self.admission_problems)

    def ensure(self, workload: WorkloadSpec) -> None:
        uid = workload.owner.uid
        if uid in self.fail_for:
            raise RuntimeError(f"injected failure for {uid}")
        if workload.model.image:
            raise NotSupported("images need Kubernetes")
        with self._lock:
            self.ensured.append(workload)
            mine = [
                r for r in self.replicas.values() if r.owner_uid == uid and r.revision == workload.revision
            ]
            for extra in mine[workload.replicas :]:
                del self.replicas[extra.id]
            for _ in range(workload.replicas - len(mine)):
                self._counter += 1
                rid = f"{workload.owner.name}-{workload.revision}-{self._counter}"
                self.replicas[rid] = ReplicaState(
                    id=rid,
                    owner_uid=uid,
                    revision=workload.revision,
                    phase="Starting",
                    url=f"http://127.0.0.1:{10000 + self._counter}",
                )

    def stop_replicas(self, owner_uid: str, replica_ids: list[str]) -> None:
        with self._lock:
            for rid in replica_ids:
                if rid in self.replicas and self.replicas[rid].owner_uid == owner_uid:
                    del self.replicas[rid]

    def remove(self, owner_uid: str, revision: int | None = None) -> None:
        with self._lock:
            self.removed.append((owner_uid, revision))
            for rid in [
                r.id
                for r in self.replicas.values()
                if r.owner_uid == owner_uid and revision in (None, r.revision)
            ]:
                del self.replicas[rid]

    def observe(self, owner_uid: str) -> list[ReplicaState]:
        with self._lock:
            return sorted((r for r in self.replicas.values() if r.owner_uid == owner_uid), key=lambda r: r.id)

    def owners(self) -> set[str]:
        with self._lock:
            return {r.owner_uid for r in self.replicas.values()}

    def log_files(self, owner_uid: str, replica: str | None = None) -> list[tuple[str, Path]]:
        return []

    def follow_logs(self, owner_uid: str, replica: str | None = None) -> Iterator[str]:
        return iter(())

    def on_change(self, callback: Callable[[str], None]) -> None:
        self._callbacks.append(callback)

    def close(self, stop_workloads: bool = True) -> None:
        if stop_workloads:
            self.replicas.clear()

    # -- test controls -------------------------------------------------------------------------

    def snapshot(self) -> list[ReplicaState]:
        """Every replica, read under the lock (reconcile threads change them concurrently)."""
        with self._lock:
            return list(self.replicas.values())

    def set_phase(
        self,
        owner_uid: str,
        phase: ReplicaPhase,
        revision: int | None = None,
        reason: str = "",
        message: str = "",
    ) -> None:
        with self._lock:
            for rid, r in list(self.replicas.items()):
                if r.owner_uid == owner_uid and revision in (None, r.revision):
                    self.replicas[rid] = replace(r, phase=phase, reason=reason, message=message)
        for callback in self._callbacks:
            callback(owner_uid)

    # -- jobs (JobRuntime) -----------------------------------------------------------------------

    def capacity(self) -> dict[str, int]:
        return {"nvidia.com/gpu": self.gpus, "cpu": 64_000, "memory": 256 * 2**30}

    def nodes(self) -> list[dict[str, int]]:
        return list(self.node_shapes)

    def handover_summary(self) -> HandoverSummary | None:
        return self.handovers

    def _gpus_in_use(self) -> int:
        return sum(
            len(w.devices)
            for r in self.job_runs.values()
            if r.phase in ("Running", "Terminating")
            for w in r.workers
        )

    def start_job(self, run: JobRun) -> None:
        uid = run.owner.uid
        with self._lock:
            current = self.job_runs.get(uid)
            if current is not None and current.attempt == run.attempt:
                return
            need = run.resources.gpus * run.workers
            if self._gpus_in_use() + need > self.gpus:
                raise InsufficientResources(
                    f"needs {need} nvidia.com/gpu, {self.gpus - self._gpus_in_use()} free"
                )
            used = {
                d
                for r in self.job_runs.values()
                if r.phase in ("Running", "Terminating")
                for w in r.workers
                for d in w.devices
            }
            free = [str(i) for i in range(self.gpus) if str(i) not in used]
            per = run.resources.gpus
            workers = tuple(
                WorkerState(i, 1000 + i, tuple(free[i * per : (i + 1) * per]), None)
                for i in range(run.workers)
            )
            self.job_runs[uid] = JobRunState(uid, run.attempt, "Running", workers, started_at=1.0)
            self.started_runs.append(run)

    def stop_job(self, owner_uid: str, grace_seconds: float) -> None:
        with self._lock:
            self.stop_requests.append((owner_uid, grace_seconds))
            run = self.job_runs.get(owner_uid)
            if run is not None and run.phase == "Running":
                self.job_runs[owner_uid] = replace(run, phase="Terminating")

    def observe_job(self, owner_uid: str) -> JobRunState | None:
        with self._lock:
            return self.job_runs.get(owner_uid)

    def forget_job(self, owner_uid: str) -> None:
        with self._lock:
            self.job_runs.pop(owner_uid, None)

    def job_owners(self) -> set[str]:
        with self._lock:
            return set(self.job_runs)

    def job_log_files(self, owner_uid: str, worker: int | None = None) -> list[tuple[str, Path]]:
        return []

    def finish_job(
        self, owner_uid: str, phase: JobRunPhase, exit_code: int | None = 0, reason: str = ""
    ) -> None:
        """Test control: the job's attempt ends (Succeeded, Failed, or Stopped after a stop request)."""
        with self._lock:
            run = self.job_runs[owner_uid]
            self.job_runs[owner_uid] = replace(
                run,
                phase=phase,
                exit_code=exit_code,
                finished_at=2.0,
                reason=reason or {"Succeeded": "Completed", "Failed": "Error"}.get(phase, "Stopped"),
            )
        for callback in self._callbacks:
            callback(owner_uid)
