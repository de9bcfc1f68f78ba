"""The Store contract, backend-agnostic: what ``tests/store`` checks for SQLite, checked for both stores.

Ported from ``tests/store`` with versions compared relatively (see ``conftest.py``). Behaviours that only
one backend can set up (an expired watch, reopening a file) stay in that backend's own tests.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pilothouse.api.event import ObjectReference
from pilothouse.api.meta import Condition
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.selectors import parse_selector
from pilothouse.store.protocol import AlreadyExists, Conflict, NotFound, Store, WatchEvent

KIND = "ModelEndpoint"
QUIET = 0.5
"""Idle timeout for watches that must end by themselves (HTTP needs more than SQLite's 0.05 s)."""


def endpoint(
    name: str = "iris", namespace: str = "default", labels: dict[str, str] | None = None, **extra: Any
) -> ModelEndpoint:
    return ModelEndpoint.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "ModelEndpoint",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"model": {"uri": "/m/model.joblib"}},
            **extra,
        }
    )


def rv(obj: Any) -> int:
    return int(obj.metadata.resourceVersion)


def test_create_sets_server_fields_and_ignores_client_ones(store: Store) -> None:
    sent = endpoint()
    sent.metadata.uid = "client-uid"
    sent.metadata.resourceVersion = "999999"
    sent.metadata.generation = 7
    created = store.create(sent)
    meta = created.metadata
    assert meta.uid and meta.uid != "client-uid"
    assert 0 < rv(created) <= store.current_version()  # Kubernetes also writes a revision object
    assert meta.generation == 1
    assert meta.creationTimestamp is not None and meta.creationTimestamp.tzinfo is not None
    assert store.get(KIND, "default", "iris") == created


def test_create_keeps_given_status(store: Store) -> None:
    created = store.create(endpoint(status={"replicas": 3, "url": "http://x"}))
    assert created.status.replicas == 3
    assert store.get(KIND, "default", "iris").status.url == "http://x"


def test_create_existing_name_is_already_exists(store: Store) -> None:
    store.create(endpoint())
    with pytest.raises(AlreadyExists):
        store.create(endpoint())
    with pytest.raises(AlreadyExists):
        store.create(endpoint(), dry_run=True)
    assert store.create(endpoint(namespace="other")).metadata.namespace == "other"


def test_create_dry_run_writes_nothing(store: Store) -> None:
    before = store.current_version()
    would_be = store.create(endpoint(), dry_run=True)
    assert would_be.metadata.uid is not None and would_be.metadata.generation == 1
    assert store.current_version() == before
    with pytest.raises(NotFound):
        store.get(KIND, "default", "iris")
    assert store.list(KIND).items == []


@pytest.mark.parametrize(
    ("kind", "namespace", "name"),
    [(KIND, "default", "nope"), (KIND, "elsewhere", "iris"), ("NoSuchKind", "default", "iris")],
)
def test_get_missing_is_not_found(store: Store, kind: str, namespace: str, name: str) -> None:
    store.create(endpoint())
    with pytest.raises(NotFound):
        store.get(kind, namespace, name)


@pytest.mark.parametrize(
    ("namespace", "selector", "expected"),
    [
        (None, "", [("a", "one"), ("a", "two"), ("b", "one")]),
        ("a", "", [("a", "one"), ("a", "two")]),
        ("other", "", []),
        (None, "app=iris,tier!=canary", [("a", "one")]),
        ("b", "tier=canary", [("b", "one")]),
        (None, "tier", [("a", "two"), ("b", "one")]),
        (None, "!tier", [("a", "one")]),
        (None, "app in (iris,wine)", [("a", "one"), ("a", "two"), ("b", "one")]),
        (None, "app notin (iris)", [("a", "two")]),
    ],
)
def test_list_by_namespace_and_selector(
    store: Store, namespace: str | None, selector: str, expected: list[tuple[str, str]]
) -> None:
    store.create(endpoint("one", "b", {"app": "iris", "tier": "canary"}))
    store.create(endpoint("two", "a", {"app": "wine", "tier": "stable"}))
    last = store.create(endpoint("one", "a", {"app": "iris"}))
    result = store.list(KIND, namespace, parse_selector(selector))
    assert [(o.metadata.namespace, o.metadata.name) for o in result.items] == expected
    assert result.resource_version >= rv(last)


def test_generation_bumps_only_on_spec_change(store: Store) -> None:
    created = store.create(endpoint())
    changed = created.model_copy(deep=True)
    changed.metadata.labels = {"team": "ml"}
    changed.metadata.annotations = {"note": "x"}
    relabelled = store.update(changed)
    assert relabelled.metadata.labels == {"team": "ml"} and relabelled.metadata.annotations == {"note": "x"}
    assert relabelled.metadata.generation == 1, "a label change is not a spec change"
    assert rv(relabelled) > rv(created)
    assert relabelled.metadata.uid == created.metadata.uid
    assert relabelled.metadata.creationTimestamp == created.metadata.creationTimestamp
    respecced = relabelled.model_copy(deep=True)
    respecced.spec.autoscaling.maxReplicas = 4
    updated = store.update(respecced)
    assert updated.metadata.generation == 2 and rv(updated) > rv(relabelled)
    assert store.get(KIND, "default", "iris") == updated


def test_update_never_changes_status_and_update_status_never_changes_spec(store: Store) -> None:
    created = store.create(endpoint(labels={"a": "b"}, status={"replicas": 1}))
    sent = created.model_copy(deep=True)
    sent.status.replicas = 9
    sent.spec.autoscaling.maxReplicas = 2
    updated = store.update(sent)
    assert updated.status.replicas == 1 and updated.spec.autoscaling.maxReplicas == 2
    sent = updated.model_copy(deep=True)
    sent.status.replicas = 2
    sent.status.conditions = [Condition(type="Ready", status="True", reason="Up")]
    sent.spec.autoscaling.maxReplicas = 5
    sent.metadata.labels = {"hijacked": "yes"}
    status = store.update_status(sent)
    assert status.status.replicas == 2 and status.status.conditions[0].reason == "Up"
    assert status.spec == updated.spec and status.metadata.labels == {"a": "b"}
    assert status.metadata.generation == 2
    assert store.get(KIND, "default", "iris") == status


@pytest.mark.parametrize("method", ["update", "update_status"])
def test_stale_resource_version_is_conflict(store: Store, method: str) -> None:
    first = store.create(endpoint())
    fresh = first.model_copy(deep=True)
    fresh.metadata.labels = {"v": "2"}
    fresh.status.replicas = 2
    getattr(store, method)(fresh)
    stale = first.model_copy(deep=True)
    stale.metadata.labels = {"v": "stale"}
    stale.status.replicas = 99
    before = store.current_version()
    with pytest.raises(Conflict):
        getattr(store, method)(stale)
    assert store.current_version() == before
    current = store.get(KIND, "default", "iris")
    assert current.metadata.labels != {"v": "stale"} and current.status.replicas != 99


@pytest.mark.parametrize("method", ["update", "update_status"])
def test_no_resource_version_means_last_writer_wins(store: Store, method: str) -> None:
    created = store.create(endpoint())
    blind = endpoint(labels={"x": "y"}, status={"replicas": 4})
    assert blind.metadata.resourceVersion is None
    assert rv(getattr(store, method)(blind)) > rv(created)


@pytest.mark.parametrize("method", ["update", "update_status"])
def test_update_of_missing_object_is_not_found(store: Store, method: str) -> None:
    with pytest.raises(NotFound):
        getattr(store, method)(endpoint())


def test_update_of_recreated_object_is_conflict(store: Store) -> None:
    old = store.create(endpoint())
    store.delete(KIND, "default", "iris")
    store.create(endpoint())
    old.metadata.resourceVersion = None
    old.metadata.labels = {"x": "y"}
    with pytest.raises(Conflict, match=r"(?i)uid"):
        store.update(old)


@pytest.mark.parametrize("method", ["update", "update_status"])
def test_no_op_update_writes_nothing(store: Store, method: str) -> None:
    created = store.create(endpoint(labels={"a": "b"}))
    before = store.current_version()
    assert getattr(store, method)(created.model_copy(deep=True)) == created
    assert store.current_version() == before
    assert len(store.history(created.metadata.uid or "")) == 1


def test_update_dry_run_writes_nothing(store: Store) -> None:
    created = store.create(endpoint())
    before = store.current_version()
    sent = created.model_copy(deep=True)
    sent.spec.autoscaling.maxReplicas = 3
    would_be = store.update(sent, dry_run=True)
    assert would_be.spec.autoscaling.maxReplicas == 3 and would_be.metadata.generation == 2
    assert store.current_version() == before
    assert store.get(KIND, "default", "iris") == created
    assert len(store.history(created.metadata.uid or "")) == 1
    stale = created.model_copy(deep=True)
    stale.metadata.resourceVersion = str(rv(created) - 1)
    with pytest.raises(Conflict):
        store.update(stale, dry_run=True)


def test_history_keeps_one_revision_per_generation(store: Store) -> None:
    obj = store.create(endpoint())
    uid = obj.metadata.uid or ""
    for replicas, label in [(2, "a"), (2, "b"), (3, "b"), (4, "c")]:
        obj = obj.model_copy(deep=True)
        obj.spec.autoscaling.maxReplicas = replicas
        obj.metadata.labels = {"l": label}
        obj = store.update(obj)
    revisions = store.history(uid)
    assert [r.generation for r in revisions] == [1, 2, 3, 4]
    assert [r.spec["autoscaling"]["maxReplicas"] for r in revisions] == [1, 2, 3, 4]
    assert all(r.uid == uid for r in revisions)
    assert store.history("no-such-uid") == []


def test_delete_returns_last_state_and_removes_object_and_history(store: Store) -> None:
    created = store.create(endpoint(status={"replicas": 1}))
    deleted = store.delete(KIND, "default", "iris")
    assert deleted.metadata.uid == created.metadata.uid and deleted.status.replicas == 1
    assert rv(deleted) > rv(created)
    with pytest.raises(NotFound):
        store.get(KIND, "default", "iris")
    with pytest.raises(NotFound):
        store.delete(KIND, "default", "iris")
    assert store.history(created.metadata.uid or "") == []
    again = store.create(endpoint())
    assert again.metadata.uid != created.metadata.uid and again.metadata.generation == 1


def test_delete_with_stale_resource_version_is_conflict(store: Store) -> None:
    created = store.create(endpoint())
    with pytest.raises(Conflict):
        store.delete(KIND, "default", "iris", resource_version=str(rv(created) - 1))
    assert store.delete(
        KIND, "default", "iris", resource_version=created.metadata.resourceVersion
    ).metadata.name


# -- watch ------------------------------------------------------------------------------------------


def _three_changes(store: Store) -> list[int]:
    created = store.create(endpoint("a"))
    created.status.replicas = 1
    updated = store.update_status(created)
    deleted = store.delete(KIND, "default", "a")
    return [rv(created), rv(updated), rv(deleted)]


def test_watch_replays_changes_after_since_in_order(store: Store) -> None:
    versions = _three_changes(store)
    events = list(store.watch(KIND, since=versions[0], timeout=QUIET))
    assert [(e.type, e.resource_version, e.object.metadata.name) for e in events] == [
        ("MODIFIED", versions[1], "a"),
        ("DELETED", versions[2], "a"),
    ]
    assert events[0].object.status.replicas == 1
    assert list(store.watch(KIND, since=versions[2], timeout=QUIET)) == []


def test_since_zero_replays_nothing_and_the_start_is_fixed_at_the_call(store: Store) -> None:
    _three_changes(store)
    stream = store.watch(KIND, timeout=5)
    store.create(endpoint("later"))  # before the generator first runs
    event = next(stream)
    assert (event.type, event.object.metadata.name) == ("ADDED", "later")


def test_watch_filters_by_kind(store: Store) -> None:
    versions = _three_changes(store)
    assert len(list(store.watch(KIND, since=versions[0], timeout=QUIET))) == 2
    assert list(store.watch("Job", since=versions[0], timeout=QUIET)) == []
    with pytest.raises(NotFound):
        store.watch("NoSuchKind")


def test_watch_times_out_when_nothing_happens(store: Store) -> None:
    started = time.monotonic()
    assert list(store.watch(KIND, timeout=0.3)) == []
    assert time.monotonic() - started >= 0.3


def test_watcher_in_another_thread_gets_every_change_in_order(store: Store) -> None:
    seen: list[WatchEvent] = []
    stream = store.watch(KIND, timeout=10)

    def watcher() -> None:
        for event in stream:
            seen.append(event)
            if len(seen) == 10:
                return

    thread = threading.Thread(target=watcher)
    thread.start()
    created = [store.create(endpoint(f"n{i}")) for i in range(10)]
    thread.join(10)
    assert not thread.is_alive()
    assert [e.resource_version for e in seen] == [rv(o) for o in created]
    assert [e.object.metadata.name for e in seen] == [f"n{i}" for i in range(10)]


def test_close_ends_a_blocked_watch(store: Store) -> None:
    finished = threading.Event()
    stream = store.watch(KIND, timeout=30)

    def watcher() -> None:
        for _ in stream:
            pass
        finished.set()

    thread = threading.Thread(target=watcher)
    thread.start()
    store.close()
    assert finished.wait(5)
    thread.join()


# -- concurrency ------------------------------------------------------------------------------------


def test_concurrent_read_modify_update_loses_no_update(store: Store) -> None:
    threads_n, increments = 6, 4
    store.create(endpoint("counter"))
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(10)
            for _ in range(increments):
                while True:
                    obj = store.get(KIND, "default", "counter")
                    obj.metadata.annotations["count"] = str(
                        int(obj.metadata.annotations.get("count", "0")) + 1
                    )
                    try:
                        store.update(obj)
                        break
                    except Conflict:
                        continue
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    final = store.get(KIND, "default", "counter")
    assert final.metadata.annotations["count"] == str(threads_n * increments)
    assert final.metadata.generation == 1


# -- events -----------------------------------------------------------------------------------------


def _ref(name: str = "iris", namespace: str = "default", uid: str | None = "u1") -> ObjectReference:
    return ObjectReference(kind=KIND, namespace=namespace, name=name, uid=uid)


def test_repeated_event_is_folded(store: Store) -> None:
    for _ in range(3):
        store.record_event(_ref(), "Warning", "ModelLoadFailed", "no such file")
    [event] = store.list_events(_ref())
    assert event.count == 3 and event.type == "Warning"
    assert event.lastTimestamp >= event.firstTimestamp
    assert event.involvedObject == _ref()


def test_folding_needs_same_object_reason_and_message(store: Store) -> None:
    store.record_event(_ref(), "Normal", "ReplicaStarted", "replica 0")
    store.record_event(_ref(), "Normal", "ReplicaStarted", "replica 1")
    store.record_event(_ref(), "Normal", "ReplicaReady", "replica 0")
    store.record_event(_ref(uid="u2"), "Normal", "ReplicaStarted", "replica 0")
    store.record_event(_ref("wine"), "Normal", "ReplicaStarted", "replica 0")
    store.record_event(_ref(), "Normal", "ReplicaStarted", "replica 0")
    events = store.list_events()
    assert len(events) == 5
    assert sorted(e.count for e in events) == [1, 1, 1, 1, 2]


def test_events_are_ordered_by_last_occurrence(store: Store) -> None:
    store.record_event(_ref(), "Normal", "A", "a")
    store.record_event(_ref(), "Normal", "B", "b")
    store.record_event(_ref(), "Normal", "A", "a")
    assert [e.reason for e in store.list_events(_ref())] == ["B", "A"]


def test_list_events_by_object_and_namespace(store: Store) -> None:
    store.record_event(_ref("iris"), "Normal", "R", "iris")
    store.record_event(_ref("iris", uid=None), "Normal", "R", "iris without uid")
    store.record_event(_ref("iris", uid="old"), "Normal", "R", "old iris")
    store.record_event(_ref("wine"), "Normal", "R", "wine")
    store.record_event(_ref("iris", namespace="prod"), "Normal", "R", "prod iris")
    assert sorted(e.message for e in store.list_events(_ref("iris"))) == ["iris", "iris without uid"]
    assert len(store.list_events(_ref("iris", uid=None))) == 3
    assert len(store.list_events(namespace="default")) == 4
    assert [e.message for e in store.list_events(namespace="prod")] == ["prod iris"]
    assert store.list_events(namespace="other") == []
    assert len(store.list_events()) == 5
