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
from pilothouse.runtime.protocol import NotSupported, ReplicaPhase, ReplicaState, WorkloadSpec


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
