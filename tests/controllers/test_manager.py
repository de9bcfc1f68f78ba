"""The manager and the ModelEndpoint reconciler over a real SQL store and a fake runtime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes import FakeRuntime
from pilothouse.api.meta import get_condition
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.controllers.manager import Manager
from pilothouse.controllers.modelendpoint import ModelEndpointReconciler
from pilothouse.serving.gateway.routes import RouteTable
from pilothouse.store.sql import SqlStore
from support import wait_for

GATEWAY = "http://127.0.0.1:7421"


def endpoint(name: str, replicas: int = 1, uri: str = "/m/iris.joblib") -> ModelEndpoint:
    return ModelEndpoint.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "ModelEndpoint",
            "metadata": {"name": name},
            "spec": {
                "model": {"uri": uri},
                "autoscaling": {"minReplicas": replicas, "maxReplicas": max(replicas, 1)},
            },
        }
    )


class Harness:
    def __init__(self, path: Path) -> None:
        self.store = SqlStore(path)
        self.runtime = FakeRuntime()
        self.routes = RouteTable()
        self.reconciler = ModelEndpointReconciler(self.store, self.runtime, self.routes, GATEWAY)
        self.manager = Manager(self.store, [self.reconciler], resync_seconds=0.2)

        def on_change(uid: str) -> None:
            key = self.reconciler.key_for_uid(uid)
            if key is not None:
                self.manager.enqueue(key)

        self.runtime.on_change(on_change)

    def uid(self, name: str) -> str:
        uid = self.store.get("ModelEndpoint", "default", name).metadata.uid
        assert uid is not None
        return uid

    def ready(self, name: str) -> str | None:
        condition = get_condition(self.store.get("ModelEndpoint", "default", name).status.conditions, "Ready")
        return condition.status if condition else None


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "store.db")
    h.manager.start()
    yield h
    h.manager.stop()
    h.store.close()


def test_create_ready_update_rollout_delete(harness: Harness) -> None:
    harness.store.create(endpoint("iris", replicas=2))
    wait_for(lambda: len(harness.runtime.snapshot()) == 2, what="two replicas ensured")
    uid = harness.uid("iris")
    assert harness.ready("iris") == "False"
    harness.runtime.set_phase(uid, "Ready")
    wait_for(lambda: harness.ready("iris") == "True", what="Ready")
    assert len(harness.routes.upstreams("default", "iris")) == 2

    scaled = harness.store.get("ModelEndpoint", "default", "iris")
    scaled.spec.autoscaling.maxReplicas = 4  # not a template change: no new revision, no restart
    harness.store.update(scaled)
    wait_for(
        lambda: harness.store.get("ModelEndpoint", "default", "iris").status.observedGeneration == 2,
        what="generation 2 observed",
    )
    assert {r.revision for r in harness.runtime.snapshot()} == {1}
    assert harness.ready("iris") == "True"

    current = harness.store.get("ModelEndpoint", "default", "iris")
    current.spec.model.uri = "/m/iris-v2.joblib"
    harness.store.update(current)
    wait_for(lambda: any(r.revision == 2 for r in harness.runtime.snapshot()), what="revision 2 started")
    assert harness.ready("iris") == "False"
    assert {r.revision for r in harness.runtime.snapshot()} == {1, 2}, "revision 1 keeps serving"
    assert len(harness.routes.upstreams("default", "iris")) == 2, "only ready replicas take traffic"

    def kubelet_then_check() -> bool:  # new replicas appear one by one (maxSurge 1): each becomes ready
        harness.runtime.set_phase(uid, "Ready", revision=2)
        return {r.revision for r in harness.runtime.snapshot()} == {2}

    wait_for(kubelet_then_check, what="revision 1 retired")
    assert len(harness.runtime.snapshot()) == 2
    wait_for(lambda: harness.ready("iris") == "True", what="Ready on revision 2")
    status = harness.store.get("ModelEndpoint", "default", "iris").status
    assert (status.stableRevision, status.latestRevision, status.rolloutPhase) == (2, 2, "Completed")
    assert [(t.revision, t.percent) for t in status.traffic] == [(2, 100)]
    reasons = [e.reason for e in harness.store.list_events()]
    assert {"RevisionCreated", "RolloutCompleted", "RevisionRetired"} <= set(reasons)

    harness.store.delete("ModelEndpoint", "default", "iris")
    wait_for(lambda: not harness.runtime.snapshot(), what="replicas removed")
    wait_for(lambda: not harness.routes.known("default", "iris"), what="route withdrawn")


def test_one_failing_object_does_not_stop_the_others(harness: Harness) -> None:
    harness.store.create(endpoint("bad"))
    harness.runtime.fail_for.add(harness.uid("bad"))
    harness.store.create(endpoint("good"))
    wait_for(
        lambda: any(r.owner_uid == harness.uid("good") for r in harness.runtime.snapshot()),
        what="good endpoint reconciled",
    )
    wait_for(lambda: harness.manager.error_count >= 2, what="bad endpoint retried with backoff")
    harness.runtime.fail_for.clear()
    wait_for(
        lambda: any(r.owner_uid == harness.uid("bad") for r in harness.runtime.snapshot()),
        what="bad endpoint recovers once the fault is gone",
    )


def test_failure_reason_reaches_status(harness: Harness) -> None:
    harness.store.create(endpoint("iris"))
    wait_for(harness.runtime.snapshot, what="replica")
    harness.runtime.set_phase(
        harness.uid("iris"), "Failed", reason="ModelLoadFailed", message="file not found: /m/x"
    )

    def reason() -> str | None:
        c = get_condition(harness.store.get("ModelEndpoint", "default", "iris").status.conditions, "Ready")
        return c.reason if c else None

    wait_for(lambda: reason() == "ModelLoadFailed", what="ModelLoadFailed in status")
    events = harness.store.list_events()
    assert any(e.type == "Warning" and "file not found: /m/x" in e.message for e in events)


def test_orphaned_replicas_are_collected_on_resync(tmp_path: Path) -> None:
    h = Harness(tmp_path / "store.db")
    try:
        h.store.create(endpoint("iris"))
        h.manager.start()
        wait_for(h.runtime.snapshot, what="replica")
        h.manager.stop()
        # The endpoint is deleted while no controller runs; a new manager must clean up on its first resync.
        h.store.delete("ModelEndpoint", "default", "iris")
        fresh = Manager(
            h.store, [ModelEndpointReconciler(h.store, h.runtime, h.routes, GATEWAY)], resync_seconds=0.2
        )
        fresh.start()
        wait_for(lambda: not h.runtime.snapshot(), what="orphan collected")
        fresh.stop()
    finally:
        h.store.close()
