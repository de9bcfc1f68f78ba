"""``KubeStore`` behaviours that only the Kubernetes backend has (the shared contract is in
``tests/store_contract``): where history and events live, error mapping, expiry and resumed watches."""

from __future__ import annotations

import threading

import pytest
from emulator import KubernetesApiEmulator
from emulator.crds import pilothouse_crds

from kubernetes import client as k8s
from pilothouse.api.event import ObjectReference
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.team import Team
from pilothouse.store.kube import KubeStore
from pilothouse.store.kube.history import OWNER_UID
from pilothouse.store.protocol import Conflict, Expired, NotFound, Store, StoreError, WatchEvent

KIND = "ModelEndpoint"


def endpoint(name: str = "iris", namespace: str = "default") -> ModelEndpoint:
    return ModelEndpoint.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "ModelEndpoint",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": {"uri": "/m/model.joblib"}},
        }
    )


def test_kube_store_implements_the_store_protocol(kube_store: KubeStore) -> None:
    as_protocol: Store = kube_store  # checked by mypy
    assert as_protocol.current_version() > 0


def test_objects_are_custom_resources_in_their_team_namespace(
    kube_store: KubeStore, api_client: k8s.ApiClient
) -> None:
    created = kube_store.create(endpoint(namespace="a"))
    raw = k8s.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "pilothouse.dev", "v1alpha1", "a", "modelendpoints", "iris"
    )
    assert raw["metadata"]["uid"] == created.metadata.uid
    assert raw["spec"]["model"]["uri"] == "/m/model.joblib"
    with pytest.raises(NotFound, match="namespaces"):
        kube_store.create(endpoint(namespace="no-such-team"))


def test_history_is_controller_revisions_owned_by_the_object(
    kube_store: KubeStore, emulator: KubernetesApiEmulator, api_client: k8s.ApiClient
) -> None:
    obj = kube_store.create(endpoint())
    obj.spec.autoscaling.maxReplicas = 3
    obj = kube_store.update(obj)
    apps = k8s.AppsV1Api(api_client)
    revisions = apps.list_namespaced_controller_revision(
        "default", label_selector=f"{OWNER_UID}={obj.metadata.uid}"
    )
    assert sorted(r.revision for r in revisions.items) == [1, 2]
    assert {r.metadata.owner_references[0].uid for r in revisions.items} == {obj.metadata.uid}
    # The cluster's garbage collector would remove them with the owner even without the store's help.
    k8s.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        "pilothouse.dev", "v1alpha1", "default", "modelendpoints", "iris"
    )
    assert apps.list_namespaced_controller_revision("default").items == []


def test_team_history_and_events_live_in_the_system_namespace(
    kube_store: KubeStore, api_client: k8s.ApiClient
) -> None:
    team = kube_store.create(Team.model_validate({"metadata": {"name": "ml"}, "spec": {"weight": 2}}))
    assert kube_store.get("Team", "", "ml") == team
    assert [t.metadata.name for t in kube_store.list("Team").items] == ["ml"]
    assert [r.generation for r in kube_store.history(team.metadata.uid or "")] == [1]
    ref = ObjectReference(kind="Team", namespace="", name="ml", uid=team.metadata.uid)
    kube_store.record_event(ref, "Normal", "QuotaChanged", "weight 2")
    kube_store.record_event(ref, "Normal", "QuotaChanged", "weight 2")
    [event] = kube_store.list_events(ref)
    assert event.count == 2
    [raw] = k8s.CoreV1Api(api_client).list_namespaced_event("default").items
    assert (raw.involved_object.kind, raw.count, raw.source.component) == ("Team", 2, "pilothouse")
    assert [e.reason for e in kube_store.list_events(namespace="")] == ["QuotaChanged"]


def test_errors_are_mapped_by_status_and_reason(
    kube_store: KubeStore, emulator: KubernetesApiEmulator
) -> None:
    emulator.fail(
        "POST", r"/modelendpoints$", status=409, message="already exists (but reason says Conflict)"
    )
    with pytest.raises(Conflict):
        kube_store.create(endpoint())
    emulator.fail("GET", r"/modelendpoints/iris$", status=503)
    with pytest.raises(StoreError) as caught:
        kube_store.get(KIND, "default", "iris")
    assert caught.value.status_code == 503 and not isinstance(caught.value, NotFound)


def test_invalid_objects_are_manifest_errors_naming_the_field(
    kube_store: KubeStore, api_client: k8s.ApiClient
) -> None:
    source, _ = pilothouse_crds()
    if source != "pilothouse.api.crd":
        pytest.skip("the minimal stand-in CRDs have open schemas")
    created = kube_store.create(endpoint())
    created.spec.autoscaling.minReplicas = 5
    created.spec.autoscaling.maxReplicas = 2  # the model would refuse this; the CRD's CEL rule must too
    with pytest.raises(ValueError, match="autoscaling"):
        kube_store.update(created)


def test_watch_from_a_compacted_version_is_expired(
    kube_store: KubeStore, emulator: KubernetesApiEmulator
) -> None:
    first = kube_store.create(endpoint("a"))
    kube_store.create(endpoint("b"))
    emulator.compact()
    with pytest.raises(Expired):
        next(kube_store.watch(KIND, since=int(first.metadata.resourceVersion or 0), timeout=2))


@pytest.mark.parametrize("abrupt", [False, True])
def test_watch_resumes_after_dropped_streams_without_loss(
    kube_store: KubeStore, emulator: KubernetesApiEmulator, abrupt: bool
) -> None:
    stream = kube_store.watch(KIND, timeout=10)
    seen: list[WatchEvent] = []
    done = threading.Event()

    def watcher() -> None:
        for event in stream:
            seen.append(event)
            if len(seen) == 6:
                break
        done.set()

    thread = threading.Thread(target=watcher)
    thread.start()
    for i in range(6):
        kube_store.create(endpoint(f"n{i}"))
        if i % 2:
            emulator.drop_watches(abrupt=abrupt)
    assert done.wait(15)
    thread.join()
    assert [e.object.metadata.name for e in seen] == [f"n{i}" for i in range(6)]


def test_watch_of_all_kinds_merges_them(kube_store: KubeStore) -> None:
    stream = kube_store.watch(None, timeout=5)
    kube_store.create(endpoint())
    kube_store.create(Team.model_validate({"metadata": {"name": "ml"}}))
    kinds = {next(stream).object.kind, next(stream).object.kind}
    assert kinds == {"ModelEndpoint", "Team"}
