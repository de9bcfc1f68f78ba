"""ModelEndpoint revisions -> Deployment + Service + PDB: schema-valid, Go-rule-valid, and what the manifest says."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api.errors import ManifestError
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import parse_manifest
from pilothouse.runtime.kubernetes.builders import KubernetesConfig, build_revision, workload_for
from pilothouse.runtime.kubernetes.builders.names import revision_name

CONFIG = KubernetesConfig()
UID = "6f1c1f3e-2b0a-4f4e-9a51-0c2f3d1e9b77"


def endpoint(spec: dict[str, Any], name: str = "llm", labels: dict[str, str] | None = None) -> ModelEndpoint:
    doc = {
        "apiVersion": "pilothouse.dev/v1alpha1",
        "kind": "ModelEndpoint",
        "metadata": {
            "name": name,
            "namespace": "vision",
            "uid": UID,
            "generation": 3,
            "labels": labels or {},
        },
        "spec": spec,
    }
    obj = parse_manifest(doc)
    assert isinstance(obj, ModelEndpoint)
    return obj


def build(me: ModelEndpoint, replicas: int | None = None) -> list[dict[str, Any]]:
    return build_revision(
        workload_for(me, replicas=replicas), CONFIG, endpoint_labels=me.metadata.labels
    ).all()


def server(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = objects[0]["spec"]["template"]["spec"]["containers"][0]
    return container


def test_real_world_manifest(k8s_valid: Any) -> None:
    """The short forms people paste: image string, "nvidia.com/gpu: 2", 32Gi, autoscaling 2..10."""
    me = endpoint(
        {
            "model": "registry.example.com/team/llm:1.2",
            "resources": {"accelerators": "nvidia.com/gpu: 2", "memory": "32Gi"},
            "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "targetUtilization": 70},
        }
    )
    objects = build(me)
    k8s_valid(objects)
    deployment = objects[0]
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 2
    container = server(objects)
    assert container["image"] == "registry.example.com/team/llm:1.2"
    assert container["resources"] == {
        "requests": {"memory": "32Gi", "nvidia.com/gpu": "2"},
        "limits": {"memory": "32Gi", "nvidia.com/gpu": "2"},
    }
    pod = deployment["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in pod["volumes"])  # /dev/shm


def test_revision_objects_are_owned_labelled_and_selected(k8s_valid: Any) -> None:
    objects = build(endpoint({"model": {"image": "x/y:1"}}), replicas=4)
    k8s_valid(objects)
    deployment, service, pdb = objects
    assert [o["kind"] for o in objects] == ["Deployment", "Service", "PodDisruptionBudget"]
    assert {o["metadata"]["name"] for o in objects} == {"llm-r3"}  # revision = generation
    for obj in objects:
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "ModelEndpoint",
            "name": "llm",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "pilothouse"
        assert labels["app.kubernetes.io/managed-by"] == "pilothouse-operator"
        assert labels["pilothouse.dev/endpoint"] == "llm" and labels["pilothouse.dev/revision"] == "3"
        assert {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"} <= set(
            labels
        )
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector == pdb["spec"]["selector"]["matchLabels"]
    assert set(selector) == {
        "pilothouse.dev/endpoint",
        "pilothouse.dev/revision",
        "app.kubernetes.io/component",
    }
    assert deployment["spec"]["replicas"] == 4
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}
    ]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_restricted_security_context_and_probes() -> None:
    objects = build(endpoint({"model": {"uri": "s3://models/iris.joblib"}}))
    pod = objects[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "privileged": False,
        }
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    container = pod["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 1800
    assert "tolerations" not in pod and "nodeSelector" not in pod  # CPU pods stay off GPU nodes


def test_uri_model_is_fetched_by_an_init_container(k8s_valid: Any) -> None:
    objects = build(endpoint({"model": {"uri": "s3://models/iris/model.joblib", "name": "iris"}}))
    k8s_valid(objects)
    pod = objects[0]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == CONFIG.storage_initializer_image
    assert init["args"] == ["s3://models/iris/model.joblib", "/models"]
    assert init["envFrom"] == [{"secretRef": {"name": "pilothouse-storage", "optional": True}}]
    assert {"name": "models", "emptyDir": {}} in pod["volumes"]
    container = pod["containers"][0]
    assert container["image"] == CONFIG.model_server_image
    assert container["command"] == ["python", "-m", "pilothouse.serving.modelserver"]
    assert container["args"] == [
        "--name", "iris", "--model-uri", "/models/model.joblib", "--format", "sklearn",
        "--host", "0.0.0.0", "--port", "8080",
    ]  # fmt: skip
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    assert {"name": "PILOTHOUSE_TERMINATION_LOG", "value": "/dev/termination-log"} in container["env"]


def test_pvc_model_is_mounted_not_copied(k8s_valid: Any) -> None:
    objects = build(endpoint({"model": {"uri": "pvc://model-store/llm/model.py", "className": "Chat"}}))
    k8s_valid(objects)
    pod = objects[0]["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "model-store", "readOnly": True}} in pod[
        "volumes"
    ]
    args = pod["containers"][0]["args"]
    assert args[args.index("--model-uri") + 1] == "/models/llm/model.py"
    assert args[args.index("--class-name") + 1] == "Chat"


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("/home/me/model.joblib", "is a local file"),
        ("file:///home/me/model.joblib", "is a local file"),
        ("ftp://host/model.onnx", "unsupported scheme 'ftp'"),
        ("pvc://model-store", "must name a claim and a path"),
    ],
)
def test_uris_no_node_can_read_are_rejected(uri: str, why: str) -> None:
    with pytest.raises(ManifestError) as caught:
        build(endpoint({"model": {"uri": uri, "format": "onnx"}}))
    (problem,) = caught.value.problems
    assert problem.path == "spec.model.uri" and why in problem.message and "s3://" in problem.message


def test_command_model_runs_in_the_base_image(k8s_valid: Any) -> None:
    objects = build(endpoint({"model": {"command": ["python", "serve.py"], "readinessPath": "/healthz"}}))
    k8s_valid(objects)
    container = server(objects)
    assert container["image"] == CONFIG.model_server_image and container["command"] == ["python", "serve.py"]
    assert {"name": "PORT", "value": "8080"} in container["env"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"] == {
        "tcpSocket": {"port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def test_accelerator_label_selects_the_node_pool(k8s_valid: Any) -> None:
    me = endpoint(
        {"model": "x/y:1", "resources": {"accelerators": {"nvidia.com/gpu": 1}, "cpu": "4"}},
        labels={"pilothouse.dev/accelerator": "nvidia-l4"},
    )
    objects = build(me)
    k8s_valid(objects)
    pod = objects[0]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pilothouse.dev/accelerator": "nvidia-l4"}
    assert server(objects)["resources"]["requests"] == {"cpu": "4", "nvidia.com/gpu": "1"}
    assert "cpu" not in server(objects)["resources"]["limits"]  # no CPU throttling of model servers


@pytest.mark.parametrize(
    "name",
    ["a" * 63, "3d-vision", "x", "a" * 55 + "-" + "b" * 7],
)
def test_long_and_digit_names_stay_valid(name: str, k8s_valid: Any) -> None:
    objects = build(endpoint({"model": "x/y:1"}, name=name))
    k8s_valid(objects)  # includes: Service names are DNS-1035 labels <= 63 characters
    assert objects[0]["metadata"]["name"] == revision_name(name, 3)
    assert revision_name(name, 3) != revision_name(name, 4)


def test_render_defaults_without_a_stored_object(k8s_valid: Any) -> None:
    """Before the API server stores it there is no uid: no owner reference rather than a fake one."""
    me = parse_manifest(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "ModelEndpoint",
            "metadata": {"name": "llm"},
            "spec": {"model": "x/y:1", "autoscaling": {"minReplicas": 0, "maxReplicas": 3}},
        }
    )
    assert isinstance(me, ModelEndpoint)
    objects = build_revision(workload_for(me), CONFIG).all()
    k8s_valid(objects)
    assert all("ownerReferences" not in o["metadata"] for o in objects)
    assert objects[0]["metadata"]["name"] == "llm-r1" and objects[0]["spec"]["replicas"] == 0
