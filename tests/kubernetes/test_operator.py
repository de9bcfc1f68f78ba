"""The operator (kopf hosting our reconcilers) against the API emulator over HTTP on 127.0.0.1.

kopf runs in-process in standalone mode; the emulator's kubelet helpers play the Deployment and Job
controllers. Each test applies example manifests through the API (as ``kubectl apply`` would) and
waits for the state the operator must converge to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from emulator import KubernetesApiEmulator
from operator_harness import EXAMPLES, RunningOperator, load_documents, wait_for

from kubernetes import client as k8s
from pilothouse.api.meta import GROUP, VERSION


@pytest.fixture
def operator(cluster: KubernetesApiEmulator, api_client: k8s.ApiClient) -> Iterator[RunningOperator]:
    with RunningOperator(api_client) as running:
        yield running


def apply(api_client: k8s.ApiClient, doc: dict[str, Any]) -> dict[str, Any]:
    custom = k8s.CustomObjectsApi(api_client)
    plural = {"ModelEndpoint": "modelendpoints", "Job": "jobs", "Team": "teams"}[doc["kind"]]
    namespace = doc["metadata"].get("namespace")
    if namespace:
        return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, doc)  # type: ignore[no-any-return]
    return custom.create_cluster_custom_object(GROUP, VERSION, plural, doc)  # type: ignore[no-any-return]


def get_cr(emulator: KubernetesApiEmulator, plural: str, name: str, namespace: str = "") -> dict[str, Any]:
    return emulator.get(f"{GROUP}/{VERSION}", plural, name, namespace)


def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return condition  # type: ignore[no-any-return]
    return None


def absent(emulator: KubernetesApiEmulator, api_version: str, plural: str, name: str, namespace: str) -> bool:
    try:
        emulator.get(api_version, plural, name, namespace)
    except Exception:
        return True
    return False


def gpu_nodes(emulator: KubernetesApiEmulator, count: int, gpus: int) -> None:
    """Nodes with allocatable GPUs; status is a subresource, written as the kubelet would."""
    allocatable = {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": str(gpus), "pods": "110"}

    def report(obj: dict[str, Any]) -> None:
        obj["status"] = {"allocatable": dict(allocatable), "capacity": dict(allocatable)}

    for i in range(count):
        emulator.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"gpu-{i}"}})
        emulator.state.mutate(emulator.resource("v1", "nodes"), "", f"gpu-{i}", report, status=True)


def test_endpoint_becomes_ready_with_its_native_objects(
    cluster: KubernetesApiEmulator, api_client: k8s.ApiClient, operator: RunningOperator
) -> None:
    (endpoint,) = load_documents(EXAMPLES / "kubernetes" / "iris-endpoint.yaml")
    created = apply(api_client, endpoint)
    uid = created["metadata"]["uid"]

    pdb = wait_for(lambda: cluster.get("policy/v1", "poddisruptionbudgets", "iris-r1", "vision"), what="PDB")
    deployment = cluster.get("apps/v1", "deployments", "iris-r1", "vision")
    service = cluster.get("v1", "services", "iris-r1", "vision")
    for obj in (deployment, service, pdb):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == ("ModelEndpoint", uid, True)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["template"]["spec"]["initContainers"][0]["args"][0].startswith("s3://")
    assert (
        "pilothouse.dev/finalizer"
        in get_cr(cluster, "modelendpoints", "iris", "vision")["metadata"]["finalizers"]
    )

    cluster.mark_deployment_ready("vision", "iris-r1")
    ready = wait_for(
        lambda: (
            (c := ready_condition(get_cr(cluster, "modelendpoints", "iris", "vision")))
            and c["status"] == "True"
            and c
        ),
        what="Ready",
    )
    assert ready["reason"] == "ReplicasReady"
    status = get_cr(cluster, "modelendpoints", "iris", "vision")["status"]
    assert status["url"].endswith("/vision/iris")
    assert status["readyReplicas"] == 1
    routes = operator.host.routes.configmap.read()
    assert (
        routes["vision.iris"]["revisions"][0]["replicas"][0]["url"]
        == "http://iris-r1.vision.svc.cluster.local:80"
    )


def test_gpu_endpoint_requests_gpus_and_deletion_leaves_nothing(
    cluster: KubernetesApiEmulator, api_client: k8s.ApiClient, operator: RunningOperator
) -> None:
    (endpoint,) = load_documents(EXAMPLES / "kubernetes" / "llm-endpoint.yaml")
    apply(api_client, endpoint)
    wait_for(lambda: cluster.get("policy/v1", "poddisruptionbudgets", "llm-r1", "vision"), what="PDB")
    deployment = cluster.get("apps/v1", "deployments", "llm-r1", "vision")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {
        "pilothouse.dev/accelerator": "nvidia-h100-80gb"
    }

    k8s.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, "vision", "modelendpoints", "llm"
    )
    wait_for(lambda: absent(cluster, f"{GROUP}/{VERSION}", "modelendpoints", "llm", "vision"), what="CR gone")
    for api_version, plural in (
        ("apps/v1", "deployments"),
        ("v1", "services"),
        ("policy/v1", "poddisruptionbudgets"),
    ):
        assert absent(cluster, api_version, plural, "llm-r1", "vision"), plural
    routes = operator.host.routes.configmap.read()
    assert "vision.llm" not in routes


def test_team_yields_namespace_quota_and_policies(
    cluster: KubernetesApiEmulator, api_client: k8s.ApiClient, operator: RunningOperator
) -> None:
    (team,) = load_documents(EXAMPLES / "kubernetes" / "team.yaml")
    team["metadata"]["name"] = "robotics"
    apply(api_client, team)
    last = ("networking.k8s.io/v1", "networkpolicies", "pilothouse-allow-job-peers", "robotics")
    wait_for(lambda: cluster.get(*last), what="the team's last object")
    quota = cluster.get("v1", "resourcequotas", "pilothouse-quota", "robotics")
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "12"
    namespace = cluster.get("v1", "namespaces", "robotics")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert cluster.get("v1", "limitranges", "pilothouse-defaults", "robotics")
    for policy in ("pilothouse-default-deny-ingress", "pilothouse-allow-job-peers"):
        assert cluster.get("networking.k8s.io/v1", "networkpolicies", policy, "robotics")


def test_job_is_created_suspended_admitted_unsuspended_and_succeeds(
    cluster: KubernetesApiEmulator, api_client: k8s.ApiClient, operator: RunningOperator
) -> None:
    for team in load_documents(EXAMPLES / "jobs" / "teams.yaml"):
        apply(api_client, team)
    (job,) = load_documents(EXAMPLES / "jobs" / "nlp-job.yaml")
    job["spec"].pop("workingDir", None)
    apply(api_client, job)

    batch = wait_for(lambda: cluster.get("batch/v1", "jobs", "bert", "nlp"), what="suspended batch Job")
    assert batch["spec"]["suspend"] is True
    assert (get_cr(cluster, "jobs", "bert", "nlp").get("status") or {}).get("phase", "Pending") == "Pending"

    gpu_nodes(cluster, 1, 2)  # capacity appears: the queue admits the gang of 2
    wait_for(
        lambda: cluster.get("batch/v1", "jobs", "bert", "nlp")["spec"]["suspend"] is False, what="unsuspended"
    )
    wait_for(lambda: get_cr(cluster, "jobs", "bert", "nlp")["status"]["phase"] == "Running", what="Running")

    cluster.mark_job_succeeded("nlp", "bert")
    wait_for(
        lambda: get_cr(cluster, "jobs", "bert", "nlp")["status"]["phase"] == "Succeeded", what="Succeeded"
    )

    k8s.CustomObjectsApi(api_client).delete_namespaced_custom_object(GROUP, VERSION, "nlp", "jobs", "bert")
    wait_for(lambda: absent(cluster, f"{GROUP}/{VERSION}", "jobs", "bert", "nlp"), what="Job CR gone")
    assert absent(cluster, "batch/v1", "jobs", "bert", "nlp")
