"""What the controllers and kubelets of a real cluster would do, on request.

No pods run here, so a Deployment never becomes ready and a Job never finishes by itself. Tests (and
later operator tests) call these helpers to write the status those controllers would write, the way
kwok fakes nodes: ``replicas``/``readyReplicas``/``availableReplicas``/``updatedReplicas`` and the
``Available``/``Progressing`` conditions for a Deployment; ``succeeded``, ``startTime``,
``completionTime`` and the ``SuccessCriteriaMet`` + ``Complete`` conditions (both required since 1.31)
for a batch Job. ``Kubelet`` runs them in a background thread for every Deployment (and, if asked, every
unsuspended Job) as soon as it appears or changes.
"""

from __future__ import annotations

import threading
from typing import Any

from .objects import ClusterState, now_rfc3339


def _condition(type_: str, reason: str, message: str, probe: str = "lastUpdateTime") -> dict[str, Any]:
    """Deployment conditions carry ``lastUpdateTime``; Job conditions ``lastProbeTime``."""
    now = now_rfc3339()
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        probe: now,
        "lastTransitionTime": now,
    }


def mark_deployment_ready(state: ClusterState, namespace: str, name: str) -> dict[str, Any]:
    rt = state.catalog.find("apps", "v1", "deployments")
    assert rt is not None

    def ready(obj: dict[str, Any]) -> None:
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        obj["status"] = {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                _condition("Available", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                _condition(
                    "Progressing",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{name}" has successfully progressed.',
                ),
            ],
        }
        if replicas == 0:
            for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
                del obj["status"][key]

    return state.mutate(rt, namespace, name, ready, status=True)


def mark_job_succeeded(state: ClusterState, namespace: str, name: str) -> dict[str, Any]:
    rt = state.catalog.find("batch", "v1", "jobs")
    assert rt is not None

    def succeed(obj: dict[str, Any]) -> None:
        spec = obj.get("spec") or {}
        now = now_rfc3339()
        status = obj.get("status") or {}
        obj["status"] = {
            "startTime": status.get("startTime", now),
            "completionTime": now,
            "succeeded": int(spec.get("completions") or 1),
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": [
                _condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    "lastProbeTime",
                ),
                _condition(
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    "lastProbeTime",
                ),
            ],
        }

    return state.mutate(rt, namespace, name, succeed, status=True)


class Kubelet:
    """A background loop that marks every Deployment ready (and optionally every unsuspended Job done)."""

    def __init__(self, state: ClusterState, *, jobs: bool = False) -> None:
        self.state = state
        self.jobs = jobs
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emulator-kubelet", daemon=True)
        state.subscribe(self._wake.set)

    def start(self) -> Kubelet:
        self._thread.start()
        self._wake.set()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)

    def _run(self) -> None:
        deployments = self.state.catalog.find("apps", "v1", "deployments")
        jobs = self.state.catalog.find("batch", "v1", "jobs")
        assert deployments is not None and jobs is not None
        everything = lambda obj: True  # noqa: E731
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            items, _ = self.state.snapshot(deployments, None, everything)
            for obj in items:
                status, meta = obj.get("status") or {}, obj["metadata"]
                replicas = int((obj.get("spec") or {}).get("replicas", 1))
                if meta.get("deletionTimestamp"):
                    continue
                if (
                    status.get("observedGeneration") != meta.get("generation")
                    or status.get("readyReplicas", 0) != replicas
                ):
                    self._quietly(mark_deployment_ready, meta["namespace"], meta["name"])
            if not self.jobs:
                continue
            items, _ = self.state.snapshot(jobs, None, everything)
            for obj in items:
                if (obj.get("spec") or {}).get("suspend") or (obj.get("status") or {}).get("completionTime"):
                    continue
                self._quietly(mark_job_succeeded, obj["metadata"]["namespace"], obj["metadata"]["name"])

    def _quietly(self, fn: Any, namespace: str, name: str) -> None:
        try:
            fn(self.state, namespace, name)
        except Exception:  # deleted meanwhile: the next round sees the truth
            return
