"""Watch: replay from a resourceVersion, follow live changes across threads, expire past the log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from pilothouse.store.protocol import Expired, WatchEvent
from pilothouse.store.sql import SqlStore

from .helpers import KIND, endpoint


def _three_changes(store: SqlStore) -> None:
    created = store.create(endpoint("a"))  # rv 1
    created.status.replicas = 1
    store.update_status(created)  # rv 2
    store.delete(KIND, "default", "a")  # rv 3


def _summary(events: list[WatchEvent]) -> list[tuple[str, int, str]]:
    return [(e.type, e.resource_version, e.object.metadata.name) for e in events]


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (1, [("MODIFIED", 2, "a"), ("DELETED", 3, "a")]),
        (2, [("DELETED", 3, "a")]),
        (3, []),
    ],
)
def test_watch_replays_changes_after_since_in_order(
    store: SqlStore, since: int, expected: list[tuple[str, int, str]]
) -> None:
    _three_changes(store)
    assert _summary(list(store.watch(since=since, timeout=0.05))) == expected


def test_replayed_objects_are_the_objects_as_written(store: SqlStore) -> None:
    created = store.create(endpoint("a"))
    created.status.replicas = 7
    updated = store.update_status(created)
    deleted = store.delete(KIND, "default", "a")
    # "since" of 0 would mean "from now": replay from the first version instead.
    store.create(endpoint("b"))
    events = list(store.watch(since=1, timeout=0.05))
    assert [e.object for e in events[:2]] == [updated, deleted]
    assert events[0].object.metadata.resourceVersion == "2"
    assert events[1].object.status.replicas == 7


def test_since_zero_replays_nothing(store: SqlStore) -> None:
    _three_changes(store)
    assert list(store.watch(timeout=0.05)) == []


def test_watch_start_is_fixed_when_watch_is_called(store: SqlStore) -> None:
    stream = store.watch(timeout=1)
    store.create(endpoint("later"))  # before the generator first runs
    assert _summary([next(stream)]) == [("ADDED", 1, "later")]


def test_watch_filters_by_kind(store: SqlStore) -> None:
    _three_changes(store)
    assert len(list(store.watch(KIND, since=1, timeout=0.05))) == 2
    with pytest.raises(Exception, match="unknown kind"):
        store.watch("NoSuchKind")


def test_watch_times_out_when_nothing_happens(store: SqlStore) -> None:
    started = time.monotonic()
    assert list(store.watch(timeout=0.2)) == []
    assert time.monotonic() - started >= 0.2


def test_watch_receives_a_change_made_by_another_thread(store: SqlStore) -> None:
    stream = store.watch(since=store.current_version(), timeout=10)
    waiting = threading.Event()

    def writer() -> None:
        waiting.wait(5)
        store.create(endpoint("from-thread"))

    thread = threading.Thread(target=writer)
    thread.start()
    waiting.set()
    started = time.monotonic()
    event = next(stream)  # blocks on the store's condition until the writer commits
    thread.join()
    assert time.monotonic() - started < 5
    assert (event.type, event.object.metadata.name) == ("ADDED", "from-thread")


def test_watcher_in_another_thread_gets_every_change_in_order(store: SqlStore) -> None:
    seen: list[WatchEvent] = []
    stream = store.watch(since=0, timeout=10)  # its start is fixed here, before any write

    def watcher() -> None:
        for event in stream:
            seen.append(event)
            if len(seen) == 20:
                return

    thread = threading.Thread(target=watcher)
    thread.start()
    for i in range(20):
        store.create(endpoint(f"n{i}"))
    thread.join(10)
    assert not thread.is_alive()
    assert [e.resource_version for e in seen] == list(range(1, 21))
    assert [e.object.metadata.name for e in seen] == [f"n{i}" for i in range(20)]


def test_close_ends_a_blocked_watch(open_store: Callable[..., SqlStore]) -> None:
    store = open_store()
    finished = threading.Event()

    def watcher() -> None:
        for _ in store.watch(timeout=30):
            pass
        finished.set()

    thread = threading.Thread(target=watcher)
    thread.start()
    store.close()
    assert finished.wait(5)
    thread.join()


def test_watch_from_before_the_retained_log_is_expired(open_store: Callable[..., SqlStore]) -> None:
    store = open_store(retain_changes=3)
    for i in range(6):
        store.create(endpoint(f"n{i}"))  # rv 1..6; the log keeps 4..6
    with pytest.raises(Expired, match="too old"):
        store.watch(since=1)
    with pytest.raises(Expired):
        store.watch(since=2)
    assert [e.resource_version for e in store.watch(since=3, timeout=0.05)] == [4, 5, 6]
    assert [e.resource_version for e in store.watch(since=5, timeout=0.05)] == [6]
    assert list(store.watch(since=0, timeout=0.05)) == []


def test_watcher_that_falls_behind_while_following_is_expired(open_store: Callable[..., SqlStore]) -> None:
    store = open_store(retain_changes=2)
    store.create(endpoint("first"))
    stream = store.watch(since=0, timeout=1)
    for i in range(5):
        store.create(endpoint(f"n{i}"))
    with pytest.raises(Expired):
        next(stream)


def test_pruning_does_not_reset_the_version(open_store: Callable[..., SqlStore]) -> None:
    store = open_store(retain_changes=1)
    for i in range(5):
        store.create(endpoint(f"n{i}"))
    for i in range(5):
        store.delete(KIND, "default", f"n{i}")
    store.close()
    reopened = open_store(retain_changes=1)
    assert reopened.current_version() == 10
    assert reopened.create(endpoint()).metadata.resourceVersion == "11"
