"""``KubernetesRuntime``: the ``Runtime`` and ``JobRuntime`` contracts on a cluster, applying the builders.

The controllers ask for "N replicas of revision R" and "start attempt A of this gang"; this module turns
that into Deployment/Service/PDB writes and suspend/unsuspend patches, and reads the Deployments' and
Jobs' status back as ``ReplicaState``/``JobRunState`` (``replicas.py``, ``jobstate.py``). It never
decides anything, and it never reads our custom resources except to build a batch Job it has not seen.

- ``ensure`` is create-or-patch. Each object carries the hash of what the builder produced
  (``pilothouse.dev/spec-hash``), so an unchanged revision costs one read and no write, and a server's
  defaulting never looks like drift. Replicas are set through ``spec.replicas`` (a merge patch; the
  ``scale`` subresource is for an external autoscaler, and the emulator does not serve it).
- Objects are found by our labels and matched to an owner by their controller owner reference (uid);
  deleting the custom resource garbage-collects them, ``remove`` deletes them at once ("already gone"
  is success).
- Jobs follow Kueue: a batch Job is created suspended (``prepare_job``, or on first start), and
  admission is the merge patch that unsuspends it and records the attempt. ``stop_job`` suspends it:
  the Job controller deletes the pods, each with the ``terminationGracePeriodSeconds`` the builder set
  (``preemptionGracePeriodSeconds``); the ``grace_seconds`` argument cannot shorten that. A deleted
  Pilothouse Job is cancelled by garbage collection of its batch Job.
- Logs come from the pods (``follow_logs``); there are no log files (``log_files`` is empty).
- ``on_change`` runs one watch thread per kind (Deployments, batch Jobs) with our labels.
- Listing per call is fine for tens of objects; a cluster with thousands wants an informer cache here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from kubernetes import client
from pilothouse.api.errors import FieldProblem, ManifestError
from pilothouse.api.job import Job
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.runtime.kubernetes.builders.artifact import artifact_for
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.builders.endpoint import MODEL_SERVER_COMPONENT, build_revision
from pilothouse.runtime.kubernetes.builders.job import WORKER, build_job
from pilothouse.runtime.kubernetes.builders.names import (
    COMPONENT,
    MANAGED_BY,
    REVISION_LABEL,
    job_name,
)
from pilothouse.runtime.kubernetes.jobstate import (
    ATTEMPT_ANNOTATION,
    FORGOTTEN_ANNOTATION,
    STARTED_ANNOTATION,
    attempt_of,
    is_finished,
    job_run_state,
    node_capacity,
    node_shapes,
)
from pilothouse.runtime.kubernetes.replicas import owner_uid, replica_states, revision_of
from pilothouse.runtime.kubernetes.rest import NativeApi, Obj
from pilothouse.runtime.protocol import HandoverSummary, JobRun, JobRunState, ReplicaState, WorkloadSpec

log = logging.getLogger(__name__)

HASH_ANNOTATION = "pilothouse.dev/spec-hash"
MANAGED = f"app.kubernetes.io/managed-by={MANAGED_BY}"
REVISION_SELECTOR = f"{MANAGED},{COMPONENT}={MODEL_SERVER_COMPONENT}"
JOB_SELECTOR = f"{MANAGED},{COMPONENT}={WORKER}"
NODE_LIST_TTL_SECONDS = 1.0
"""How long one listing of the Nodes answers ``capacity`` and ``nodes`` (a node added or cordoned is seen
at most this much later)."""
REVISION_KINDS = ("Deployment", "Service", "PodDisruptionBudget")
_JOB_META = ("name", "namespace", "labels", "annotations", "uid", "resourceVersion", "generation")


def spec_hash(obj: Obj) -> str:
    """Hash of what the builder produced, without the replica count (which changes on its own)."""
    body = {k: v for k, v in obj.items() if k != "metadata"}
    if obj["kind"] == "Deployment":
        body = json.loads(json.dumps(body))
        body["spec"].pop("replicas", None)
    body["labels"] = obj["metadata"].get("labels")
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


class KubernetesRuntime:
    """Model-server revisions and gang jobs as native objects, through an injected ``ApiClient``."""

    name = "kubernetes"
    runs_images = True

    def __init__(
        self,
        api_client: client.ApiClient,
        config: KubernetesConfig | None = None,
        *,
        watch_timeout_seconds: int = 30,
    ) -> None:
        self.config = config or KubernetesConfig()
        self.api = NativeApi(api_client)
        self.watch_timeout_seconds = watch_timeout_seconds
        self._callbacks: list[Callable[[str], None]] = []
        self._stop = threading.Event()
        self._watchers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._nodes_lock = threading.Lock()
        self._nodes: tuple[float, list[Obj]] | None = None

    # -- endpoints --------------------------------------------------------------------------------

    def admit(self, endpoint: ModelEndpoint) -> list[FieldProblem]:
        """Images run here; a ``uri`` must name something every node can fetch (not a local file)."""
        if endpoint.spec.model.kind != "uri":
            return []
        try:
            artifact_for(endpoint.spec.model, self.config)
        except ManifestError as exc:
            return list(exc.problems)
        return []

    def ensure(self, workload: WorkloadSpec) -> None:
        labels = self._endpoint_labels(workload)
        objects = build_revision(workload, self.config, endpoint_labels=labels)
        for obj in objects.all():
            self._apply(obj)

    def _endpoint_labels(self, workload: WorkloadSpec) -> dict[str, str]:
        """The endpoint's labels select the accelerator node pool; they are read from the resource."""
        doc = self.api.get("ModelEndpointCR", workload.owner.namespace, workload.owner.name)
        labels: dict[str, str] = ((doc or {}).get("metadata") or {}).get("labels") or {}
        return labels

    def _apply(self, obj: Obj) -> None:
        meta = obj["metadata"]
        digest = spec_hash(obj)
        meta.setdefault("annotations", {})[HASH_ANNOTATION] = digest
        kind, namespace, name = obj["kind"], meta.get("namespace"), meta["name"]
        current = self.api.get(kind, namespace, name)
        if current is None:
            try:
                self.api.create(obj)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
                current = self.api.get(kind, namespace, name) or {}
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        patch: Obj = {}
        if annotations.get(HASH_ANNOTATION) != digest:
            patch = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
            patch["metadata"] = {
                k: meta[k] for k in ("labels", "annotations", "ownerReferences") if k in meta
            }
        elif kind == "Deployment" and (current.get("spec") or {}).get("replicas") != obj["spec"]["replicas"]:
            patch = {"spec": {"replicas": obj["spec"]["replicas"]}}
        if patch:
            self.api.patch(kind, namespace, name, patch)

    def _revisions(self, uid: str, revision: int | None = None) -> list[Obj]:
        selector = REVISION_SELECTOR + (f",{REVISION_LABEL}={revision}" if revision is not None else "")
        return [d for d in self.api.list("Deployment", None, selector) if owner_uid(d) == uid]

    def stop_replicas(self, owner_uid: str, replica_ids: list[str]) -> None:
        """Lower each revision's ``spec.replicas`` by the number of its ids; Kubernetes picks the pods."""
        wanted = set(replica_ids)
        for deployment in self._revisions(owner_uid):
            known = {r.id for r in replica_states(deployment, owner_uid)}
            count = len(known & wanted)
            if count:
                meta = deployment["metadata"]
                replicas = max(0, int(deployment["spec"].get("replicas", 1)) - count)
                self.api.patch(
                    "Deployment", meta["namespace"], meta["name"], {"spec": {"replicas": replicas}}
                )

    def remove(self, owner_uid: str, revision: int | None = None) -> None:
        for deployment in self._revisions(owner_uid, revision):
            meta = deployment["metadata"]
            for kind in REVISION_KINDS:
                self.api.delete(kind, meta["namespace"], meta["name"])

    def observe(self, owner_uid: str) -> list[ReplicaState]:
        states: list[ReplicaState] = []
        for deployment in sorted(self._revisions(owner_uid), key=lambda d: revision_of(d) or 0):
            states += replica_states(deployment, owner_uid)
        return states

    def owners(self) -> set[str]:
        return {uid for d in self.api.list("Deployment", None, REVISION_SELECTOR) if (uid := owner_uid(d))}

    def log_files(self, owner_uid: str, replica: str | None = None) -> list[tuple[str, Path]]:
        """There are no log files on a cluster; ``follow_logs`` reads the pods' logs."""
        return []

    def pods(self, owner_uid: str) -> list[Obj]:
        """The model-server pods of every revision of one endpoint, by the revisions' selectors."""
        found: list[Obj] = []
        for deployment in self._revisions(owner_uid):
            match = deployment["spec"]["selector"]["matchLabels"]
            selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
            found += self.api.list("Pod", deployment["metadata"]["namespace"], selector)
        return found

    def follow_logs(self, owner_uid: str, replica: str | None = None) -> Iterator[str]:
        """Lines of every pod (``[pod] line``), or of the pod named ``replica``; follows until closed."""
        pods = [p for p in self.pods(owner_uid) if replica in (None, p["metadata"]["name"])]
        return self.pod_logs(pods, follow=True)

    def pod_logs(self, pods: list[Obj], *, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        if not follow or len(pods) <= 1:
            for pod in pods:
                meta = pod["metadata"]
                prefix = f"[{meta['name']}] " if len(pods) > 1 else ""
                for line in self.api.read_log(meta["namespace"], meta["name"], follow=follow, tail=tail):
                    yield prefix + line
            return
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(pod: Obj) -> None:
            meta = pod["metadata"]
            try:
                for line in self.api.read_log(meta["namespace"], meta["name"], follow=True, tail=tail):
                    lines.put(f"[{meta['name']}] {line}")
            except ApiException:
                log.debug("log stream of %s ended", meta["name"])
            finally:
                lines.put(None)

        for pod in pods:
            threading.Thread(target=pump, args=(pod,), daemon=True, name="pod-log").start()
        open_streams = len(pods)
        while open_streams:
            item = lines.get()
            if item is None:
                open_streams -= 1
            else:
                yield item

    # -- change notification ----------------------------------------------------------------------

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(owner_uid)`` whenever one of our Deployments or batch Jobs changes."""
        with self._lock:
            self._callbacks.append(callback)
            if self._watchers:
                return
            for kind, selector in (("Deployment", REVISION_SELECTOR), ("Job", JOB_SELECTOR)):
                thread = threading.Thread(
                    target=self._watch, args=(kind, selector), name=f"kube-runtime-watch-{kind}", daemon=True
                )
                thread.start()
                self._watchers.append(thread)

    def _notify(self, obj: Obj) -> None:
        uid = owner_uid(obj)
        if uid is None:
            return
        for callback in list(self._callbacks):
            try:
                callback(uid)
            except Exception:
                log.exception("runtime change callback failed for %s", uid)

    def _watch(self, kind: str, selector: str) -> None:
        """List, then watch from the list's version; re-list after an error or a 410 (the informer loop)."""
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    items, version = self.api.list_with_version(kind, selector)
                    for item in items:
                        self._notify(item)
                for event in self.api.watch(
                    kind,
                    selector=selector,
                    resource_version=version,
                    timeout_seconds=self.watch_timeout_seconds,
                ):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        version = ""  # expired: re-list
                        break
                    version = str((obj.get("metadata") or {}).get("resourceVersion", version))
                    if event.get("type") != "BOOKMARK":
                        self._notify(obj)
                    if self._stop.is_set():
                        return
            except Exception as exc:
                log.debug("watch of %s ended (%s); re-listing", kind, exc)
                version = ""
                self._stop.wait(0.5)

    def close(self, stop_workloads: bool = True) -> None:
        """Stop watching. Workloads stay: the cluster, not this process, runs them (``stop_workloads``
        is accepted for the protocol and ignored)."""
        self._stop.set()

    # -- jobs -------------------------------------------------------------------------------------

    def capacity(self) -> dict[str, int]:
        return node_capacity(self._node_list())

    def nodes(self) -> list[dict[str, int]]:
        return node_shapes(self._node_list())

    def _node_list(self) -> list[Obj]:
        """The Nodes, listed at most once per ``NODE_LIST_TTL_SECONDS``: a queue pass asks for both
        ``capacity`` and ``nodes``, and one GET serves both."""
        with self._nodes_lock:
            now = time.monotonic()
            if self._nodes is None or now - self._nodes[0] > NODE_LIST_TTL_SECONDS:
                self._nodes = (now, self.api.list("Node"))
            return self._nodes[1]

    def handover_summary(self) -> HandoverSummary | None:
        return None  # the kubelet's device plugin hands devices over; nothing here sees it

    def _batch_job(self, uid: str) -> Obj | None:
        return next((j for j in self.api.list("Job", None, JOB_SELECTOR) if owner_uid(j) == uid), None)

    def _read_job(self, namespace: str, name: str) -> Job:
        doc = self.api.get("PilothouseJob", namespace, name)
        if doc is None:
            raise ApiException(status=404, reason=f"Job {namespace}/{name} not found")
        meta = {k: v for k, v in (doc.get("metadata") or {}).items() if k in _JOB_META}
        return Job.model_validate(
            {**{k: doc[k] for k in ("apiVersion", "kind", "spec") if k in doc}, "metadata": meta}
        )

    def prepare_job(self, job: Job) -> None:
        """Create the job's batch Job suspended, if it does not exist yet (visible while it queues)."""
        body = build_job(job, self.config)
        meta = body["metadata"]
        if self.api.get("Job", meta["namespace"], meta["name"]) is None:
            try:
                self.api.create(body)
            except ApiException as exc:
                if exc.status != 409:
                    raise

    def start_job(self, run: JobRun) -> None:
        owner = run.owner
        existing = self._batch_job(owner.uid)
        if (
            existing is not None
            and attempt_of(existing) == run.attempt
            and not existing["spec"].get("suspend")
        ):
            return  # already started
        if existing is not None and is_finished(existing):
            self.api.delete("Job", existing["metadata"]["namespace"], existing["metadata"]["name"])
            existing = None
        if existing is None:
            body = build_job(self._read_job(owner.namespace, owner.name), self.config)
            self.api.create(body)
            name = body["metadata"]["name"]
        else:
            name = existing["metadata"]["name"]
        now = datetime.now(UTC).isoformat()
        patch = {
            "metadata": {
                "annotations": {
                    ATTEMPT_ANNOTATION: str(run.attempt),
                    STARTED_ANNOTATION: now,
                    FORGOTTEN_ANNOTATION: None,
                }
            },
            "spec": {"suspend": False},
        }
        self.api.patch("Job", owner.namespace, name, patch)

    def stop_job(self, owner_uid: str, grace_seconds: float) -> None:
        job = self._batch_job(owner_uid)
        if job is not None and not job["spec"].get("suspend") and not is_finished(job):
            meta = job["metadata"]
            self.api.patch("Job", meta["namespace"], meta["name"], {"spec": {"suspend": True}})

    def observe_job(self, owner_uid: str) -> JobRunState | None:
        job = self._batch_job(owner_uid)
        return None if job is None else job_run_state(job, owner_uid)

    def forget_job(self, owner_uid: str) -> None:
        job = self._batch_job(owner_uid)
        attempt = None if job is None else attempt_of(job)
        if job is not None and attempt is not None:
            meta = job["metadata"]
            patch = {"metadata": {"annotations": {FORGOTTEN_ANNOTATION: str(attempt)}}}
            self.api.patch("Job", meta["namespace"], meta["name"], patch)

    def job_owners(self) -> set[str]:
        return {
            uid
            for j in self.api.list("Job", None, JOB_SELECTOR)
            if (uid := owner_uid(j)) and job_run_state(j, uid) is not None
        }

    def job_log_files(self, owner_uid: str, worker: int | None = None) -> list[tuple[str, Path]]:
        return []

    @staticmethod
    def batch_job_name(run: JobRun) -> str:
        return job_name(run.owner.name, run.workers)
