"""The ModelEndpoint reconciler: load the endpoint, its replicas and traffic; plan (pure); apply.

Apply is idempotent and never drops a request on purpose:

- Scale-down and retirement **drain** first: the replicas the plan removes leave the gateway's route,
  and are stopped only once the gateway reports no request in flight to them (or a drain timeout
  passes). Draining is remembered between reconciles, which requeue quickly instead of blocking a
  worker thread.
- ``ensure`` is level-triggered, routes are replaced whole, and the status is written only when it
  changed, guarded by the resourceVersion read at load time so a stale plan loses to a newer spec.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pilothouse.api.event import ObjectReference
from pilothouse.api.meta import Condition, set_condition
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.controllers.manager import ObjectKey, Result
from pilothouse.controllers.modelendpoint_plan import Plan, floor_replicas, plan
from pilothouse.controllers.revision_specs import older_revision_specs
from pilothouse.controllers.routes import EndpointRoute, Replica, RevisionRoute, RevisionStats, RoutePublisher
from pilothouse.controllers.traffic import ReplicaDecider, TrafficSource
from pilothouse.runtime.protocol import NotSupported, ReplicaState, Runtime
from pilothouse.store.protocol import NotFound, Store

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_SECONDS = 30.0
DRAIN_POLL_SECONDS = 0.1
AUTOSCALE_TICK_SECONDS = 2.0  # Knative's decision tick


@dataclass
class _Draining:
    revision: int
    url: str | None
    deadline: float


class FloorDecider:
    """Replicas without an autoscaler: the floor (``max(minReplicas, 1)``)."""

    def desired(self, endpoint: ModelEndpoint, observed: list[ReplicaState], now: float) -> int:
        return floor_replicas(endpoint)

    def explain(self, uid: str) -> str | None:
        return None

    def forget(self, uid: str) -> None:
        return None


class ModelEndpointReconciler:
    kind = "ModelEndpoint"

    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        routes: RoutePublisher,
        gateway_url: str,
        *,
        traffic: TrafficSource | None = None,
        decider: ReplicaDecider | None = None,
        clock: Callable[[], float] = time.time,
        drain_timeout: float = DRAIN_TIMEOUT_SECONDS,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.routes = routes
        self.gateway_url = gateway_url
        self.traffic = traffic
        self.decider = decider or FloorDecider()
        self.clock = clock
        self.drain_timeout = drain_timeout
        self._uids: dict[ObjectKey, str] = {}
        self._draining: dict[str, dict[str, _Draining]] = {}
        self._lock = threading.Lock()

    def key_for_uid(self, uid: str) -> ObjectKey | None:
        with self._lock:
            return next((k for k, u in self._uids.items() if u == uid), None)

    # -- reconcile ------------------------------------------------------------------------------

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

        now = self.clock()
        observed = self.runtime.observe(uid)
        desired = self.decider.desired(obj, observed, now)
        result = plan(
            obj,
            observed,
            self.gateway_url,
            desired=desired,
            now=datetime.fromtimestamp(now, UTC),
            templates=older_revision_specs(self.store, obj),
            stats=self._stats(obj, now),
        )
        previous = obj.status.desiredReplicas
        first = obj.status.observedGeneration is None  # read before _apply replaces obj.status
        self._apply(obj, result, observed, now)
        if not first and desired != previous:
            why = self.decider.explain(uid) or f"{previous} -> {desired}"
            ref = ObjectReference(kind=self.kind, namespace=key.namespace, name=key.name, uid=uid)
            self.store.record_event(ref, "Normal", "ScaledUp" if desired > previous else "ScaledDown", why)
        requeue = result.requeue_after
        if self._draining.get(uid):
            requeue = DRAIN_POLL_SECONDS
        elif self._scales(obj):
            requeue = min(requeue or AUTOSCALE_TICK_SECONDS, AUTOSCALE_TICK_SECONDS)
        return Result(requeue_after=requeue)

    @staticmethod
    def _scales(endpoint: ModelEndpoint) -> bool:
        """Whether the autoscaler has a range to move in (otherwise there is nothing to tick for)."""
        autoscaling = endpoint.spec.autoscaling
        return autoscaling.minReplicas == 0 or (autoscaling.maxReplicas or 1) > autoscaling.minReplicas

    def _stats(self, endpoint: ModelEndpoint, now: float) -> dict[int, RevisionStats]:
        status = endpoint.status
        if self.traffic is None or status.stepStartedAt is None:
            return {}
        seconds = max(1.0, now - status.stepStartedAt.timestamp())
        meta = endpoint.metadata
        revisions = {r for r in (status.latestRevision, status.stableRevision) if r is not None}
        return {r: self.traffic.revision_stats(meta.namespace, meta.name, r, seconds) for r in revisions}

    def _apply(self, obj: ModelEndpoint, result: Plan, observed: list[ReplicaState], now: float) -> None:
        meta = obj.metadata
        uid = meta.uid
        assert uid is not None
        ref = ObjectReference(kind=self.kind, namespace=meta.namespace, name=meta.name, uid=uid)
        draining = self._choose_victims(uid, result, observed, now)
        draining_urls = {d.url for d in draining.values() if d.url}
        route = EndpointRoute(
            revisions=tuple(
                RevisionRoute(
                    revision=r.revision,
                    weight=r.weight,
                    replicas=tuple(
                        Replica(u, r.concurrency_limit) for u in r.upstreams if u not in draining_urls
                    ),
                )
                for r in result.routes
            ),
            hold=result.hold_when_empty,
        )
        self.routes.publish(meta.namespace, meta.name, route)
        self._stop_drained(uid, draining, now)

        try:
            for workload in result.workloads:
                still = sum(1 for d in draining.values() if d.revision == workload.revision)
                self.runtime.ensure(replace(workload, replicas=workload.replicas + still))
        except NotSupported as exc:
            result.status.conditions = set_condition(
                result.status.conditions,
                Condition(
                    type="Ready",
                    status="False",
                    reason="NotSupported",
                    message=str(exc),
                    observedGeneration=meta.generation,
                ),
            )
            result.requeue_after = None
        for revision in result.retire_revisions:
            if not any(d.revision == revision for d in draining.values()):
                if any(r.revision == revision for r in observed):
                    self.store.record_event(ref, "Normal", "RevisionRetired", f"revision {revision} stopped")
                self.runtime.remove(uid, revision)
        for event in result.events:
            self.store.record_event(ref, event.type, event.reason, event.message)
        if result.status.model_dump(mode="json") != obj.status.model_dump(mode="json"):
            obj.status = result.status
            self.store.update_status(obj)

    def _choose_victims(
        self, uid: str, result: Plan, observed: list[ReplicaState], now: float
    ) -> dict[str, _Draining]:
        """Replicas to take out of traffic now: the plan's excess per revision, not-ready ones first."""
        with self._lock:
            draining = self._draining.setdefault(uid, {})
        alive = {r.id for r in observed}
        for rid in [rid for rid in draining if rid not in alive]:
            del draining[rid]
        wanted = {w.revision: w.replicas for w in result.workloads}
        wanted.update({r: 0 for r in result.retire_revisions})
        for revision, count in wanted.items():
            candidates = [r for r in observed if r.revision == revision and r.id not in draining]
            excess = len(candidates) - count
            if excess <= 0:
                continue
            candidates.sort(key=lambda r: (r.ready, r.id), reverse=False)
            for victim in candidates[:excess]:
                deadline = now + (self.drain_timeout if victim.ready else 0.0)
                draining[victim.id] = _Draining(revision, victim.url, deadline)
        return draining

    def _stop_drained(self, uid: str, draining: dict[str, _Draining], now: float) -> None:
        done = [
            rid
            for rid, d in draining.items()
            if now >= d.deadline or d.url is None or self.routes.inflight(d.url) == 0
        ]
        if done:
            self.runtime.stop_replicas(uid, done)
            for rid in done:
                draining.pop(rid, None)

    # -- deletion and garbage collection ----------------------------------------------------------

    def _forget(self, key: ObjectKey) -> None:
        with self._lock:
            uid = self._uids.pop(key, None)
            if uid is not None:
                self._draining.pop(uid, None)
        self.routes.withdraw(key.namespace, key.name)
        if uid is not None:
            self.decider.forget(uid)
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
