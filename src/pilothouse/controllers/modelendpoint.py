"""The ModelEndpoint reconciler: load the endpoint and its replicas, plan (pure), apply through protocols.

Apply is idempotent: ``ensure`` and ``remove`` are level-triggered, routes are replaced whole, and the
status is written only when it changed, guarded by the resourceVersion read at load time so a stale
plan loses to a newer spec instead of overwriting it.
"""

from __future__ import annotations

import logging
import threading

from pilothouse.api.event import ObjectReference
from pilothouse.api.meta import Condition, set_condition
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.controllers.manager import ObjectKey, Result
from pilothouse.controllers.modelendpoint_plan import plan
from pilothouse.controllers.routes import RoutePublisher
from pilothouse.runtime.protocol import NotSupported, Runtime
from pilothouse.store.protocol import NotFound, Store

log = logging.getLogger(__name__)


class ModelEndpointReconciler:
    kind = "ModelEndpoint"

    def __init__(self, store: Store, runtime: Runtime, routes: RoutePublisher, gateway_url: str) -> None:
        self.store = store
        self.runtime = runtime
        self.routes = routes
        self.gateway_url = gateway_url
        self._uids: dict[ObjectKey, str] = {}
        self._lock = threading.Lock()

    def key_for_uid(self, uid: str) -> ObjectKey | None:
        with self._lock:
            return next((k for k, u in self._uids.items() if u == uid), None)

    def reconcile(self, key: ObjectKey) -> Result:
        try:
            obj = self.store.get(self.kind, key.namespace, key.name)
        except NotFound:
            self._forget(key)
            return Result()
        assert isinstance(obj, ModelEndpoint) and obj.metadata.uid is not None
        uid = obj.metadata.uid
        with self._lock:
            old_uid = self._uids.get(key)
            self._uids[key] = uid
        if old_uid is not None and old_uid != uid:  # deleted and re-created under the same name
            self.runtime.remove(old_uid)

        result = plan(obj, self.runtime.observe(uid), self.gateway_url)
        ref = ObjectReference(kind=self.kind, namespace=key.namespace, name=key.name, uid=uid)
        try:
            self.runtime.ensure(result.workload)
        except NotSupported as exc:
            result.status.conditions = set_condition(
                result.status.conditions,
                Condition(
                    type="Ready",
                    status="False",
                    reason="NotSupported",
                    message=str(exc),
                    observedGeneration=obj.metadata.generation,
                ),
            )
            result.requeue_after = None
        for revision in result.retire_revisions:
            self.runtime.remove(uid, revision)
            self.store.record_event(ref, "Normal", "RevisionRetired", f"revision {revision} stopped")
        self.routes.publish(key.namespace, key.name, result.upstreams)
        for event in result.events:
            self.store.record_event(ref, event.type, event.reason, event.message)
        if result.status.model_dump(mode="json") != obj.status.model_dump(mode="json"):
            obj.status = result.status
            self.store.update_status(obj)
        return Result(requeue_after=result.requeue_after)

    def _forget(self, key: ObjectKey) -> None:
        with self._lock:
            uid = self._uids.pop(key, None)
        self.routes.withdraw(key.namespace, key.name)
        if uid is not None:
            self.runtime.remove(uid)

    def resync(self, live_keys: set[ObjectKey]) -> None:
        """Remove replicas whose endpoint is gone (e.g. deleted while the control plane was down).

        The runtime's owners are read *before* the store is listed: replicas are only ever started for an
        object already stored, so an owner missing from the later list really was deleted.
        """
        candidates = self.runtime.owners()
        live_uids = {o.metadata.uid for o in self.store.list(self.kind).items}
        for orphan in candidates - live_uids:
            log.info("removing replicas of deleted endpoint %s", orphan)
            self.runtime.remove(orphan)
        with self._lock:
            gone = [k for k in self._uids if k not in live_keys]
        for key in gone:
            try:
                self.store.get(self.kind, key.namespace, key.name)  # created after the list was taken
            except NotFound:
                self._forget(key)
