"""``ControllerHost``: the reconcilers of the embedded mode, built on the Kubernetes store and runtime.

kopf decides *when* an object is reconciled (``handlers.py``); this class decides nothing of its own and
only makes that safe:

- **One key at a time.** kopf runs an object's change handlers one after another, but timers, event
  handlers and follow-ups run beside them; a per-key lock gives the reconcilers the guarantee the
  embedded ``WorkQueue`` gives (a key is never reconciled twice at once).
- **Follow-ups** that are not kopf events — ``Result.requeue_after``, the Job reconciler's
  ``enqueue(QUEUE_KEY)`` for the queue pass, a Deployment or batch Job that changed — go through the
  controllers' ``WorkQueue`` (coalescing, per-key backoff) and a few worker threads. Their triggers all
  come from kopf handlers, which kopf stops while peering pauses this operator, so a standby replica
  does not act.
- **Deletion** runs the reconcilers' own cleanup: the object is hidden from them (``view.py``), its
  key reconciled (they see it gone), and their orphan collection (``resync``) run for its kind.
- **Kubernetes-only appliers**: a Team's namespace and quota (``TeamApplier``) and a Job's suspended
  batch Job (``prepare_job``) are written here, beside the shared reconcilers, not inside them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client
from pilothouse.api.job import Job
from pilothouse.api.team import Team
from pilothouse.controllers.job import QUEUE_KEY, JobReconciler, TeamReconciler
from pilothouse.controllers.manager import ObjectKey, Reconciler, Result
from pilothouse.controllers.modelendpoint import ModelEndpointReconciler
from pilothouse.controllers.queue import QueuePass
from pilothouse.controllers.workqueue import WorkQueue
from pilothouse.operator.config import OperatorConfig
from pilothouse.operator.routes import KubernetesRoutePublisher
from pilothouse.operator.view import DeletingHidden
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.replicas import owner_uid
from pilothouse.runtime.kubernetes.routes import RouteConfigMap
from pilothouse.runtime.kubernetes.runtime import KubernetesRuntime
from pilothouse.runtime.kubernetes.teams import TeamApplier
from pilothouse.scheduling.policies import make_policy
from pilothouse.store.kube import KubeStore
from pilothouse.store.protocol import NotFound

log = logging.getLogger(__name__)
OWNED_KINDS = ("ModelEndpoint", "Job")


class ControllerHost:
    def __init__(
        self,
        api_client: client.ApiClient,
        config: OperatorConfig | None = None,
        kube_config: KubernetesConfig | None = None,
    ) -> None:
        self.config = config or OperatorConfig()
        kube_config = kube_config or KubernetesConfig(system_namespace=self.config.system_namespace)
        self.store = KubeStore(api_client, system_namespace=self.config.system_namespace)
        self.view = DeletingHidden(self.store)
        self.runtime = KubernetesRuntime(api_client, kube_config)
        self.teams = TeamApplier(api_client, kube_config)
        self.routes = KubernetesRoutePublisher(RouteConfigMap(api_client, self.config.system_namespace))
        self.queue: WorkQueue[ObjectKey] = WorkQueue()
        policy = make_policy(self.config.scheduling_policy)
        self.queue_pass = QueuePass(self.view, self.runtime, self.runtime, policy)
        self.endpoints = ModelEndpointReconciler(self.view, self.runtime, self.routes, self.config.public_url)
        self.jobs = JobReconciler(self.view, self.runtime, self.queue_pass, self.enqueue)
        self.reconcilers: dict[str, Reconciler] = {
            r.kind: r for r in (self.endpoints, self.jobs, TeamReconciler(self.enqueue))
        }
        self._locks: dict[ObjectKey, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.reconcile_count = 0
        self.error_count = 0

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.config.workers):
            thread = threading.Thread(target=self._worker, name=f"pilothouse-operator-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.queue.close()
        for thread in self._threads:
            thread.join(timeout)
        self.runtime.close()
        self.store.close()

    # -- reconciling ------------------------------------------------------------------------------

    def _lock(self, key: ObjectKey) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def reconcile(self, key: ObjectKey) -> Result:
        """Reconcile one key now (in the caller's thread); a requested requeue becomes a follow-up."""
        with self._lock(key):
            self._prepare(key)
            result = self.reconcilers[key.kind].reconcile(key)
        self.reconcile_count += 1
        if result.requeue_after is not None:
            self.queue.add_after(key, result.requeue_after)
        return result

    def _prepare(self, key: ObjectKey) -> None:
        """The Kubernetes-only part: a Team's namespace and quota, a Job's suspended batch Job."""
        if key.kind not in ("Team", "Job") or key == QUEUE_KEY:
            return
        try:
            obj = self.view.get(key.kind, key.namespace, key.name)
        except NotFound:
            return
        if isinstance(obj, Team):
            self.teams.apply(obj)
        elif isinstance(obj, Job) and obj.status.phase in ("Pending", "Admitted"):
            self.runtime.prepare_job(obj)

    def enqueue(self, key: ObjectKey) -> None:
        self.queue.add(key)

    def delete(self, key: ObjectKey, uid: str) -> None:
        """Run the reconcilers' cleanup for an object kopf is deleting (its finalizer is still on)."""
        self.view.hide(uid)
        self.reconcile(key)
        reconciler = self.reconcilers[key.kind]
        live = {
            ObjectKey(key.kind, o.metadata.namespace, o.metadata.name) for o in self.view.list(key.kind).items
        }
        reconciler.resync(live)

    def enqueue_owner(self, child: dict[str, Any]) -> None:
        """A Deployment or batch Job of ours changed: reconcile the resource that owns it."""
        meta = child.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") in OWNED_KINDS and owner_uid(child):
                self.enqueue(ObjectKey(str(ref["kind"]), str(meta.get("namespace", "")), str(ref["name"])))

    def _worker(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            try:
                self.reconcile(key)
            except Exception:
                self.error_count += 1
                delay = self.queue.add_rate_limited(key)
                log.exception("reconcile of %s failed; retrying in %.2f s", key, delay)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)


HostFactory = Callable[[], ControllerHost]
