"""Object CRUD with Kubernetes semantics: server-set metadata, preconditions, generation, status."""

from __future__ import annotations

import pytest

from pilothouse.api.meta import Condition
from pilothouse.api.selectors import parse_selector
from pilothouse.store.protocol import AlreadyExists, Conflict, NotFound
from pilothouse.store.sql import SqlStore

from .helpers import KIND, endpoint


def test_create_sets_server_fields_and_ignores_client_ones(store: SqlStore) -> None:
    sent = endpoint()
    sent.metadata.uid = "client-uid"
    sent.metadata.resourceVersion = "999"
    sent.metadata.generation = 7
    created = store.create(sent)
    meta = created.metadata
    assert meta.uid and meta.uid != "client-uid"
    assert meta.resourceVersion == "1"
    assert meta.generation == 1
    assert meta.creationTimestamp is not None
    assert meta.creationTimestamp.tzinfo is not None
    assert store.get(KIND, "default", "iris") == created
    assert store.current_version() == 1


def test_create_keeps_given_status(store: SqlStore) -> None:
    created = store.create(endpoint(status={"replicas": 3, "url": "http://x"}))
    assert created.status.replicas == 3
    assert store.get(KIND, "default", "iris").status.url == "http://x"


def test_create_existing_name_is_already_exists(store: SqlStore) -> None:
    store.create(endpoint())
    with pytest.raises(AlreadyExists, match=r"ModelEndpoint default/iris"):
        store.create(endpoint())
    with pytest.raises(AlreadyExists):
        store.create(endpoint(), dry_run=True)
    # Same name in another namespace is a different object.
    assert store.create(endpoint(namespace="other")).metadata.namespace == "other"
    assert store.current_version() == 2


def test_create_dry_run_writes_nothing(store: SqlStore) -> None:
    would_be = store.create(endpoint(), dry_run=True)
    assert would_be.metadata.uid is not None
    assert would_be.metadata.generation == 1
    assert store.current_version() == 0
    with pytest.raises(NotFound):
        store.get(KIND, "default", "iris")
    assert store.list(KIND).items == []


@pytest.mark.parametrize(
    ("kind", "namespace", "name"),
    [(KIND, "default", "nope"), (KIND, "elsewhere", "iris"), ("NoSuchKind", "default", "iris")],
)
def test_get_missing_is_not_found(store: SqlStore, kind: str, namespace: str, name: str) -> None:
    store.create(endpoint())
    with pytest.raises(NotFound):
        store.get(kind, namespace, name)


@pytest.mark.parametrize(
    ("namespace", "selector", "expected"),
    [
        (None, "", [("a", "one"), ("a", "two"), ("b", "one")]),
        ("a", "", [("a", "one"), ("a", "two")]),
        ("b", "", [("b", "one")]),
        ("c", "", []),
        (None, "app=iris", [("a", "one"), ("b", "one")]),
        (None, "app=iris,tier!=canary", [("a", "one")]),
        ("b", "tier=canary", [("b", "one")]),
        (None, "tier", [("a", "two"), ("b", "one")]),
        (None, "!tier", [("a", "one")]),
        (None, "app in (iris,wine)", [("a", "one"), ("a", "two"), ("b", "one")]),
        (None, "app notin (iris)", [("a", "two")]),
    ],
)
def test_list_by_namespace_and_selector(
    store: SqlStore, namespace: str | None, selector: str, expected: list[tuple[str, str]]
) -> None:
    # Created out of order: the list is sorted by namespace, then name.
    store.create(endpoint("one", "b", {"app": "iris", "tier": "canary"}))
    store.create(endpoint("two", "a", {"app": "wine", "tier": "stable"}))
    store.create(endpoint("one", "a", {"app": "iris"}))
    result = store.list(KIND, namespace, parse_selector(selector))
    assert [(o.metadata.namespace, o.metadata.name) for o in result.items] == expected
    assert result.resource_version == 3


def test_update_replaces_metadata_and_spec_and_bumps_generation_on_spec_change(store: SqlStore) -> None:
    created = store.create(endpoint())
    changed = created.model_copy(deep=True)
    changed.metadata.labels = {"team": "ml"}
    changed.metadata.annotations = {"note": "x"}
    relabelled = store.update(changed)
    assert relabelled.metadata.labels == {"team": "ml"}
    assert relabelled.metadata.annotations == {"note": "x"}
    assert relabelled.metadata.generation == 1, "a label change is not a spec change"
    assert relabelled.metadata.resourceVersion == "2"
    assert relabelled.metadata.uid == created.metadata.uid
    assert relabelled.metadata.creationTimestamp == created.metadata.creationTimestamp

    respecced = relabelled.model_copy(deep=True)
    respecced.spec.autoscaling.maxReplicas = 4
    updated = store.update(respecced)
    assert updated.metadata.generation == 2
    assert updated.metadata.resourceVersion == "3"
    assert updated.spec.autoscaling.maxReplicas == 4
    assert store.get(KIND, "default", "iris") == updated


def test_update_never_changes_status(store: SqlStore) -> None:
    created = store.create(endpoint(status={"replicas": 1}))
    sent = created.model_copy(deep=True)
    sent.status.replicas = 9
    sent.spec.autoscaling.maxReplicas = 2
    updated = store.update(sent)
    assert updated.status.replicas == 1
    assert updated.spec.autoscaling.maxReplicas == 2


def test_update_status_never_changes_spec_or_metadata(store: SqlStore) -> None:
    created = store.create(endpoint(labels={"a": "b"}))
    sent = created.model_copy(deep=True)
    sent.status.replicas = 2
    sent.status.conditions = [Condition(type="Ready", status="True", reason="Up")]
    sent.spec.autoscaling.maxReplicas = 5
    sent.metadata.labels = {"hijacked": "yes"}
    updated = store.update_status(sent)
    assert updated.status.replicas == 2
    assert updated.status.conditions[0].reason == "Up"
    assert updated.spec == created.spec
    assert updated.metadata.labels == {"a": "b"}
    assert updated.metadata.generation == 1
    assert updated.metadata.resourceVersion == "2"
    assert store.get(KIND, "default", "iris") == updated


@pytest.mark.parametrize("method", ["update", "update_status"])
def test_stale_resource_version_is_conflict(store: SqlStore, method: str) -> None:
    first = store.create(endpoint())
    fresh = first.model_copy(deep=True)
    fresh.metadata.labels = {"v": "2"}
    fresh.status.replicas = 2
    getattr(store, method)(fresh)

    stale = first.model_copy(deep=True)
    stale.metadata.labels = {"v": "stale"}
    stale.status.replicas = 99
    before = store.current_version()
    with pytest.raises(
        Conflict, match=r"ModelEndpoint default/iris has been modified.*resourceVersion is 2, not 1"
    ):
        getattr(store, method)(stale)
    assert store.current_version() == before
    current = store.get(KIND, "default", "iris")
    assert current.metadata.labels != {"v": "stale"}
    assert current.status.replicas != 99


@pytest.mark.parametrize("method", ["update", "update_status"])
def test_no_resource_version_means_last_writer_wins(store: SqlStore, method: str) -> None:
    store.create(endpoint())
    blind = endpoint(labels={"x": "y"}, status={"replicas": 4})
    assert blind.metadata.resourceVersion is None
    result = getattr(store, method)(blind)
    assert result.metadata.resourceVersion == "2"


@pytest.mark.parametrize("method", ["update", "update_status"])
def test_update_of_missing_object_is_not_found(store: SqlStore, method: str) -> None:
    with pytest.raises(NotFound):
        getattr(store, method)(endpoint())


def test_update_of_recreated_object_is_conflict(store: SqlStore) -> None:
    old = store.create(endpoint())
    store.delete(KIND, "default", "iris")
    store.create(endpoint())
    old.metadata.resourceVersion = None
    old.metadata.labels = {"x": "y"}
    with pytest.raises(Conflict, match="uid"):
        store.update(old)


@pytest.mark.parametrize("method", ["update", "update_status"])
def test_no_op_update_writes_nothing(store: SqlStore, method: str) -> None:
    created = store.create(endpoint(labels={"a": "b"}))
    same = getattr(store, method)(created.model_copy(deep=True))
    assert same == created
    assert store.current_version() == 1
    assert len(store.history(created.metadata.uid or "")) == 1


def test_update_dry_run_writes_nothing(store: SqlStore) -> None:
    created = store.create(endpoint())
    sent = created.model_copy(deep=True)
    sent.spec.autoscaling.maxReplicas = 3
    would_be = store.update(sent, dry_run=True)
    assert would_be.spec.autoscaling.maxReplicas == 3
    assert would_be.metadata.generation == 2
    assert store.current_version() == 1
    assert store.get(KIND, "default", "iris") == created
    assert len(store.history(created.metadata.uid or "")) == 1
    stale = created.model_copy(deep=True)
    stale.metadata.resourceVersion = "0"
    with pytest.raises(Conflict):
        store.update(stale, dry_run=True)


def test_history_keeps_one_revision_per_generation(store: SqlStore) -> None:
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
    assert obj.metadata.generation == 4
    assert store.history("no-such-uid") == []


def test_delete_returns_last_state_and_removes_object_and_history(store: SqlStore) -> None:
    created = store.create(endpoint(status={"replicas": 1}))
    deleted = store.delete(KIND, "default", "iris")
    assert deleted.metadata.uid == created.metadata.uid
    assert deleted.status.replicas == 1
    assert deleted.metadata.resourceVersion == "2"
    with pytest.raises(NotFound):
        store.get(KIND, "default", "iris")
    with pytest.raises(NotFound):
        store.delete(KIND, "default", "iris")
    assert store.history(created.metadata.uid or "") == []
    assert store.list(KIND).items == []
    again = store.create(endpoint())
    assert again.metadata.uid != created.metadata.uid
    assert again.metadata.generation == 1


def test_delete_with_stale_resource_version_is_conflict(store: SqlStore) -> None:
    store.create(endpoint())
    with pytest.raises(Conflict):
        store.delete(KIND, "default", "iris", resource_version="0")
    store.get(KIND, "default", "iris")
    assert store.delete(KIND, "default", "iris", resource_version="1").metadata.name == "iris"


def test_every_write_bumps_the_store_wide_version(store: SqlStore) -> None:
    a = store.create(endpoint("a"))
    b = store.create(endpoint("b", namespace="other"))
    a.status.replicas = 1
    a = store.update_status(a)
    b.metadata.labels = {"x": "y"}
    b = store.update(b)
    deleted = store.delete(KIND, "default", "a")
    versions = [a.metadata.resourceVersion, b.metadata.resourceVersion, deleted.metadata.resourceVersion]
    assert versions == ["3", "4", "5"]
    assert store.current_version() == 5
