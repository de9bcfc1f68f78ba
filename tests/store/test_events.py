"""Events: repeats fold into one row with a count; listing filters by object or namespace, in time order."""

from __future__ import annotations

from pilothouse.api.event import ObjectReference
from pilothouse.store.sql import SqlStore

from .helpers import KIND


def _ref(name: str = "iris", namespace: str = "default", uid: str | None = "u1") -> ObjectReference:
    return ObjectReference(kind=KIND, namespace=namespace, name=name, uid=uid)


def test_repeated_event_is_folded(store: SqlStore) -> None:
    for _ in range(3):
        store.record_event(_ref(), "Warning", "ModelLoadFailed", "no such file")
    [event] = store.list_events(_ref())
    assert event.count == 3
    assert event.type == "Warning"
    assert event.lastTimestamp >= event.firstTimestamp
    assert event.involvedObject == _ref()


def test_folding_needs_same_object_reason_and_message(store: SqlStore) -> None:
    store.record_event(_ref(), "Normal", "ReplicaStarted", "replica 0")
    store.record_event(_ref(), "Normal", "ReplicaStarted", "replica 1")  # other message
    store.record_event(_ref(), "Normal", "ReplicaReady", "replica 0")  # other reason
    store.record_event(_ref(uid="u2"), "Normal", "ReplicaStarted", "replica 0")  # other incarnation
    store.record_event(_ref("wine"), "Normal", "ReplicaStarted", "replica 0")  # other object
    store.record_event(_ref(), "Normal", "ReplicaStarted", "replica 0")  # a repeat of the first
    events = store.list_events()
    assert len(events) == 5
    assert sorted(e.count for e in events) == [1, 1, 1, 1, 2]


def test_events_are_ordered_by_last_occurrence(store: SqlStore) -> None:
    store.record_event(_ref(), "Normal", "A", "a")
    store.record_event(_ref(), "Normal", "B", "b")
    store.record_event(_ref(), "Normal", "A", "a")
    assert [e.reason for e in store.list_events(_ref())] == ["B", "A"]


def test_list_events_by_object_and_namespace(store: SqlStore) -> None:
    store.record_event(_ref("iris"), "Normal", "R", "iris")
    store.record_event(_ref("iris", uid=None), "Normal", "R", "iris without uid")
    store.record_event(_ref("iris", uid="old"), "Normal", "R", "old iris")
    store.record_event(_ref("wine"), "Normal", "R", "wine")
    store.record_event(_ref("iris", namespace="prod"), "Normal", "R", "prod iris")
    assert [e.message for e in store.list_events(_ref("iris"))] == ["iris", "iris without uid"]
    assert [e.message for e in store.list_events(_ref("iris", uid=None))] == [
        "iris",
        "iris without uid",
        "old iris",
    ]
    assert len(store.list_events(namespace="default")) == 4
    assert [e.message for e in store.list_events(namespace="prod")] == ["prod iris"]
    assert store.list_events(namespace="nowhere") == []
    assert len(store.list_events()) == 5


def test_events_do_not_bump_the_resource_version(store: SqlStore) -> None:
    store.record_event(_ref(), "Normal", "R", "m")
    assert store.current_version() == 0
