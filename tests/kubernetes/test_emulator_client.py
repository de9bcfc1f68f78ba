"""The emulator's fidelity, proven with the official ``kubernetes`` client over real HTTP.

Each test is one apiserver behaviour that the official client, kopf or our ``KubeStore`` relies on and
that plain kmock 0.8 gets wrong (see ``../shared/notes/kubernetes-test-harness.md``).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from emulator import KubernetesApiEmulator
from kubernetes.client.exceptions import ApiException

from kubernetes import client as k8s
from kubernetes import watch
from support import wait_for

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                                    "min": {"type": "integer"},
                                    "max": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
                                        "message": "min must not exceed max",
                                    }
                                ],
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}
WIDGETS = ("example.dev", "v1", "widgets")


def _reason(exc: ApiException) -> str:
    return str(json.loads(exc.body or "{}").get("reason"))


def _deployment(name: str = "web", labels: dict[str, str] | None = None, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "main", "image": "nginx:1.27"},
                        {"name": "side", "image": "busybox"},
                    ]
                },
            },
        },
    }


@pytest.fixture
def core(api_client: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: k8s.ApiClient) -> k8s.AppsV1Api:
    return k8s.AppsV1Api(api_client)


@pytest.fixture
def custom(api_client: k8s.ApiClient) -> k8s.CustomObjectsApi:
    k8s.ApiextensionsV1Api(api_client).create_custom_resource_definition(CRD)
    return k8s.CustomObjectsApi(api_client)


def test_discovery_and_version(api_client: k8s.ApiClient, custom: k8s.CustomObjectsApi) -> None:
    assert k8s.VersionApi(api_client).get_code().minor == "33"
    core_resources = k8s.CoreV1Api(api_client).get_api_resources()
    assert core_resources.group_version == "v1"
    assert {"namespaces", "pods", "events"} <= {r.name for r in core_resources.resources}
    groups = {g.name for g in k8s.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "batch", "apiextensions.k8s.io", "example.dev"} <= groups
    [widgets] = k8s.CustomObjectsApi(api_client).get_api_resources("example.dev", "v1").resources[:1]
    assert (widgets.name, widgets.kind, widgets.namespaced) == ("widgets", "Widget", True)


def test_server_sets_metadata_and_one_global_resource_version(
    apps: k8s.AppsV1Api, core: k8s.CoreV1Api
) -> None:
    first = apps.create_namespaced_deployment("default", _deployment("a"))
    second = core.create_namespaced_config_map(
        "default", {"metadata": {"generateName": "cfg-"}, "data": {"k": "v"}}
    )
    meta = first.metadata
    assert meta.uid and meta.creation_timestamp and meta.generation == 1
    assert int(second.metadata.resource_version) == int(meta.resource_version) + 1
    assert second.metadata.name.startswith("cfg-") and len(second.metadata.name) == len("cfg-") + 5
    listing = apps.list_namespaced_deployment("default")
    assert listing.kind == "DeploymentList"
    assert int(listing.metadata.resource_version) == int(second.metadata.resource_version)


def test_generation_bumps_only_on_spec_change_and_strategic_merge_keeps_containers(
    apps: k8s.AppsV1Api,
) -> None:
    created = apps.create_namespaced_deployment("default", _deployment())
    relabelled = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert relabelled.metadata.generation == 1
    patched = apps.patch_namespaced_deployment(
        "web",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.28"}]}}}},
    )
    assert [c.image for c in patched.spec.template.spec.containers] == ["nginx:1.28", "busybox"]
    assert patched.metadata.generation == 2
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    same = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert same.metadata.resource_version == patched.metadata.resource_version, "a no-op writes nothing"


def test_put_with_stale_resource_version_is_409(apps: k8s.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment("default", _deployment())
    fresh = apps.read_namespaced_deployment("web", "default")
    fresh.spec.replicas = 3
    apps.replace_namespaced_deployment("web", "default", fresh)
    created.spec.replicas = 5
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment("web", "default", created)
    assert (caught.value.status, _reason(caught.value)) == (409, "Conflict")
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 3


def test_json_patch_test_op_mismatch_is_422_as_kopf_expects(custom: k8s.CustomObjectsApi) -> None:
    obj = custom.create_namespaced_custom_object(
        *WIDGETS[:2],
        "default",
        WIDGETS[2],
        {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}},
    )
    rv = obj["metadata"]["resourceVersion"]
    add = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["kopf.zalando.org/KopfFinalizerMarker"]},
    ]
    json_patch = {"_content_type": "application/json-patch+json"}
    patched = custom.patch_namespaced_custom_object(
        *WIDGETS[:2], "default", WIDGETS[2], "w", add, **json_patch
    )
    assert patched["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            *WIDGETS[:2], "default", WIDGETS[2], "w", add, **json_patch
        )  # rv is stale now
    assert caught.value.status == 422


def test_status_subresource_split(custom: k8s.CustomObjectsApi) -> None:
    args = (*WIDGETS[:2], "default", WIDGETS[2])
    custom.create_namespaced_custom_object(
        *args,
        {
            "apiVersion": "example.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 1},
            "status": {"phase": "ignored on create"},
        },
    )
    main = custom.patch_namespaced_custom_object(*args, "w", {"spec": {"size": 2}, "status": {"phase": "no"}})
    assert "status" not in main and main["spec"]["size"] == 2 and main["metadata"]["generation"] == 2
    status = custom.patch_namespaced_custom_object_status(
        *args, "w", {"spec": {"size": 9}, "status": {"phase": "Ready"}}
    )
    assert status["status"] == {"phase": "Ready"} and status["spec"]["size"] == 2
    assert status["metadata"]["generation"] == 2


def test_custom_resources_are_validated_defaulted_and_pruned(custom: k8s.CustomObjectsApi) -> None:
    args = (*WIDGETS[:2], "default", WIDGETS[2])
    body = {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}}
    created = custom.create_namespaced_custom_object(*args, {**body, "spec": {"size": 1, "colour": "x"}})
    assert created["spec"] == {"size": 1, "color": "red"}, "defaulted, unknown field pruned"
    for spec, message in [
        ({"size": "2"}, "spec.size"),
        ({"size": 1, "color": "green"}, "spec.color"),
        ({"color": "red"}, "'size' is a required property"),
        ({"size": 1, "min": 3, "max": 2}, "min must not exceed max"),
    ]:
        with pytest.raises(ApiException) as caught:
            custom.create_namespaced_custom_object(*args, {**body, "metadata": {"name": "bad"}, "spec": spec})
        assert (caught.value.status, _reason(caught.value)) == (422, "Invalid")
        assert message in caught.value.body
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            *args,
            {**body, "metadata": {"name": "x"}, "spec": {"size": 1, "typo": 1}},
            field_validation="Strict",
        )
    assert caught.value.status == 400


def test_builtin_kinds_are_validated_strictly(emulator: KubernetesApiEmulator, core: k8s.CoreV1Api) -> None:
    # The v37 client refuses unknown fields itself (pydantic), so send the typo past it with plain HTTP.
    bad = _deployment()
    bad["spec"]["replicaz"] = 2
    response = httpx.post(f"{emulator.url}/apis/apps/v1/namespaces/default/deployments", json=bad)
    assert response.status_code == 422 and response.json()["reason"] == "Invalid"
    assert "replicaz" in response.json()["message"]
    mismatched = _deployment()
    mismatched["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    response = httpx.post(f"{emulator.url}/apis/apps/v1/namespaces/default/deployments", json=mismatched)
    assert response.status_code == 422 and "selector" in response.json()["message"]
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Llama_3.1"}})
    assert caught.value.status == 422 and "metadata.name" in caught.value.body
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": "ok", "labels": {"a": "meta/llama"}}}
        )
    assert caught.value.status == 422


def test_namespaces_and_missing_namespace_is_404(core: k8s.CoreV1Api, apps: k8s.AppsV1Api) -> None:
    core.create_namespace({"metadata": {"name": "team-a"}})
    assert "team-a" in {n.metadata.name for n in core.list_namespace().items}
    assert core.read_namespace("team-a").status.phase == "Active"
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("nowhere", _deployment())
    assert (caught.value.status, _reason(caught.value)) == (404, "NotFound")
    apps.create_namespaced_deployment("team-a", _deployment())
    core.delete_namespace("team-a")
    with pytest.raises(ApiException):
        core.read_namespace("team-a")
    assert apps.list_deployment_for_all_namespaces().items == []


def test_label_and_field_selectors(apps: k8s.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", _deployment("a", {"tier": "web", "env": "prod"}))
    apps.create_namespaced_deployment("default", _deployment("b", {"tier": "db"}))
    apps.create_namespaced_deployment("kube-system", _deployment("c", {"tier": "web"}))

    def names(**kwargs: Any) -> list[str]:
        return [d.metadata.name for d in apps.list_deployment_for_all_namespaces(**kwargs).items]

    assert names(label_selector="tier=web") == ["a", "c"]
    assert names(label_selector="tier in (web,db),!env") == ["b", "c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.namespace!=default") == ["c"]
    assert [
        d.metadata.name for d in apps.list_namespaced_deployment("default", label_selector="env").items
    ] == ["a"]
    with pytest.raises(ApiException) as caught:
        names(field_selector="spec.replicas=1")
    assert caught.value.status == 400


def test_watch_from_resource_version_replays_only_newer_changes(apps: k8s.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", _deployment("old"))
    since = apps.list_namespaced_deployment("default").metadata.resource_version
    apps.create_namespaced_deployment("default", _deployment("new"))
    apps.patch_namespaced_deployment("new", "default", {"spec": {"replicas": 2}})
    apps.delete_namespaced_deployment("new", "default")
    stream = watch.Watch().stream(
        apps.list_namespaced_deployment, "default", resource_version=since, timeout_seconds=1
    )
    events = [(e["type"], e["object"].metadata.name) for e in stream]
    assert events == [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "new")]
    # Without a resourceVersion the watch starts with the current objects, as synthetic ADDED events.
    fresh = watch.Watch().stream(apps.list_namespaced_deployment, "default", timeout_seconds=1)
    assert [(e["type"], e["object"].metadata.name) for e in fresh] == [("ADDED", "old")]


def test_watch_from_a_compacted_version_is_410(emulator: KubernetesApiEmulator, apps: k8s.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", _deployment())
    emulator.compact()
    with pytest.raises(ApiException) as caught:
        list(
            watch.Watch().stream(
                apps.list_namespaced_deployment, "default", resource_version="1", timeout_seconds=1
            )
        )
    assert caught.value.status == 410


def test_watch_bookmarks_carry_the_current_version(api_client: k8s.ApiClient, apps: k8s.AppsV1Api) -> None:
    rv = apps.create_namespaced_deployment("default", _deployment()).metadata.resource_version
    stream = watch.Watch().stream(
        apps.list_namespaced_deployment,
        "default",
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
    )
    bookmarks = [e for e in stream if e["type"] == "BOOKMARK"]
    assert bookmarks and bookmarks[0]["raw_object"]["metadata"]["resourceVersion"] == rv


def test_finalizers_hold_deletion_until_removed(core: k8s.CoreV1Api) -> None:
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "held", "finalizers": ["example.dev/hold"]}}
    )
    core.delete_namespaced_config_map("held", "default")
    assert core.read_namespaced_config_map("held", "default").metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map(
            "held", "default", {"metadata": {"finalizers": ["example.dev/hold", "new"]}}
        )
    assert caught.value.status == 403
    core.patch_namespaced_config_map(
        "held",
        "default",
        [{"op": "remove", "path": "/metadata/finalizers"}],
        _content_type="application/json-patch+json",
    )
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("held", "default")
    assert caught.value.status == 404


def test_owner_references_cascade_and_orphan(core: k8s.CoreV1Api, apps: k8s.AppsV1Api) -> None:
    owner = apps.create_namespaced_deployment("default", _deployment())
    ref = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "uid": owner.metadata.uid,
        "controller": True,
    }
    for name in ("child-1", "child-2"):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "ownerReferences": [ref]}})
    grandchild_ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "child-1",
        "uid": core.read_namespaced_config_map("child-1", "default").metadata.uid,
    }
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "grandchild", "ownerReferences": [grandchild_ref]}}
    )
    apps.delete_namespaced_deployment("web", "default")
    assert core.list_namespaced_config_map("default").items == []

    other = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    orphan_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": other.metadata.uid}
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "kept", "ownerReferences": [orphan_ref]}}
    )
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    assert core.read_namespaced_config_map("kept", "default").metadata.owner_references is None


def test_dry_run_persists_nothing(core: k8s.CoreV1Api) -> None:
    before = core.list_namespaced_config_map("default").metadata.resource_version
    made = core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
    assert made.metadata.uid
    assert core.list_namespaced_config_map("default").metadata.resource_version == before
    assert core.list_namespaced_config_map("default").items == []


@pytest.mark.parametrize("status", [503, 500, 409])
def test_injected_faults_fail_before_any_state_change(
    emulator: KubernetesApiEmulator, core: k8s.CoreV1Api, status: int
) -> None:
    rule = emulator.fail("POST", r"/configmaps$", status=status, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
        assert caught.value.status == status
    assert core.list_namespaced_config_map("default").items == [], "a failed request changed nothing"
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert rule.hits == 2


def test_dropped_watches_end_and_resume_from_the_last_version(
    emulator: KubernetesApiEmulator, core: k8s.CoreV1Api
) -> None:
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    w = watch.Watch()
    stream = w.stream(core.list_namespaced_config_map, "default", resource_version=rv, _request_timeout=5)
    core.create_namespaced_config_map("default", {"metadata": {"name": "one"}})
    assert next(stream)["object"].metadata.name == "one"
    emulator.drop_watches()
    core.create_namespaced_config_map("default", {"metadata": {"name": "two"}})
    assert next(stream)["object"].metadata.name == "two", "the client re-watched from the last version"
    w.stop()
    assert sum(1 for method, path in emulator.requests if "watch=true" in path) >= 2


def test_kubelet_helpers_write_controller_status(
    emulator: KubernetesApiEmulator, apps: k8s.AppsV1Api, api_client: k8s.ApiClient
) -> None:
    apps.create_namespaced_deployment("default", _deployment(replicas=3))
    emulator.mark_deployment_ready("default", "web")
    status = apps.read_namespaced_deployment_status("web", "default").status
    assert (status.ready_replicas, status.available_replicas, status.observed_generation) == (3, 3, 1)
    batch = k8s.BatchV1Api(api_client)
    batch.create_namespaced_job(
        "default",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "train"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "python"}]}
                }
            },
        },
    )
    emulator.mark_job_succeeded("default", "train")
    job = batch.read_namespaced_job_status("train", "default").status
    assert job.succeeded == 1 and {c.type for c in job.conditions} == {"SuccessCriteriaMet", "Complete"}
    emulator.start_kubelet()
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 5}})
    wait_for(
        lambda: apps.read_namespaced_deployment_status("web", "default").status.ready_replicas == 5,
        timeout=10,
        what="the background kubelet to mark the scaled Deployment ready",
    )
