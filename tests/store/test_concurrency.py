"""Many threads at once: optimistic concurrency loses no update, versions stay strictly increasing."""

from __future__ import annotations

import threading
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilothouse.api.registry import Resource
from pilothouse.store.protocol import AlreadyExists, Conflict, NotFound, WatchEvent
from pilothouse.store.sql import SqlStore

from .helpers import KIND, endpoint

THREADS = 12
INCREMENTS = 5


def _increment(store: SqlStore, conflicts: list[int]) -> None:
    """Read-modify-write with retry on Conflict, as a controller does."""
    while True:
        obj = store.get(KIND, "default", "counter")
        obj.metadata.annotations["count"] = str(int(obj.metadata.annotations.get("count", "0")) + 1)
        try:
            store.update(obj)
            return
        except Conflict:
            conflicts.append(1)


def test_concurrent_read_modify_update_loses_no_update(store: SqlStore) -> None:
    store.create(endpoint("counter"))
    stream = store.watch(since=0, timeout=10)
    barrier = threading.Barrier(THREADS)
    conflicts: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(10)
            for _ in range(INCREMENTS):
                _increment(store, conflicts)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    total = THREADS * INCREMENTS
    final = store.get(KIND, "default", "counter")
    assert final.metadata.annotations["count"] == str(total)
    assert final.metadata.resourceVersion == str(1 + total)
    assert final.metadata.generation == 1
    # The watch saw every write, once, in order, with each count exactly one more than the last.
    events: list[WatchEvent] = []
    for event in stream:
        events.append(event)
        if len(events) == total:
            break
    assert [e.resource_version for e in events] == list(range(2, 2 + total))
    assert [e.object.metadata.annotations["count"] for e in events] == [str(i) for i in range(1, total + 1)]


def test_concurrent_creates_of_one_name_admit_exactly_one(store: SqlStore) -> None:
    barrier = threading.Barrier(THREADS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait(10)
        try:
            store.create(endpoint("race"))
            result = "created"
        except AlreadyExists:
            result = "exists"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["created"] + ["exists"] * (THREADS - 1)
    assert store.current_version() == 1


_names = st.sampled_from(["a", "b", "c"])
_ops = st.lists(
    st.tuples(
        st.sampled_from(["create", "update", "relabel", "status", "delete", "dry"]), _names, st.integers(1, 4)
    ),
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_versions_strictly_increase_over_any_sequence_of_ops(
    tmp_path: Path, ops: list[tuple[str, str, int]]
) -> None:
    with SqlStore(tmp_path / "property.db") as store:
        # The file is shared by all examples: each gets a fresh namespace, marked by a first write.
        namespace = f"ns{store.current_version() + 1}"
        start = int(store.create(endpoint("start", namespace)).metadata.resourceVersion or "")
        writes = 0
        for op, name, n in ops:
            before = store.current_version()
            try:
                result = _apply(store, op, namespace, name, n)
            except (AlreadyExists, NotFound):
                assert store.current_version() == before
                continue
            after = store.current_version()
            if after == before:  # a dry run, or a no-op update that returns the stored object
                assert op == "dry" or result == store.get(KIND, namespace, name)
            else:
                writes += 1
                assert after == before + 1
                assert result.metadata.resourceVersion == str(after)
        replay = [e.resource_version for e in store.watch(since=start, timeout=0.01)]
        assert replay == list(range(start + 1, start + 1 + writes))


def _apply(store: SqlStore, op: str, namespace: str, name: str, n: int) -> Resource:
    if op == "create":
        return store.create(endpoint(name, namespace))
    if op == "dry":
        return store.create(endpoint(name, namespace), dry_run=True)
    if op == "delete":
        return store.delete(KIND, namespace, name)
    obj = store.get(KIND, namespace, name)
    if op == "update":
        obj.spec.autoscaling.maxReplicas = n
        return store.update(obj)
    if op == "relabel":
        obj.metadata.labels = {"n": str(n)}
        return store.update(obj)
    obj.status.replicas = n
    return store.update_status(obj)
