"""The operator converges under injected faults: 503s on writes, a 409 on a status write, dropped watches."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator import KubernetesApiEmulator
from operator_harness import EXAMPLES, RunningOperator, load_documents, wait_for
from test_operator import absent, apply, get_cr, ready_condition

from kubernetes import client as k8s
from pilothouse.api.meta import GROUP, VERSION


@pytest.fixture
def operator(cluster: KubernetesApiEmulator, api_client: k8s.ApiClient) -> Iterator[RunningOperator]:
    with RunningOperator(api_client, resync_seconds=1.0) as running:
        yield running


def test_endpoint_converges_through_503s_conflicts_and_dropped_watches(
    cluster: KubernetesApiEmulator, api_client: k8s.ApiClient, operator: RunningOperator
) -> None:
    rules = [
        cluster.fail("POST", r"/apis/apps/v1/namespaces/vision/deployments", 503, times=3),
        cluster.fail("PUT", r"/modelendpoints/iris/status", 409, times=1),
        cluster.fail("PATCH", r"/modelendpoints/iris", 503, times=2),
    ]
    (endpoint,) = load_documents(EXAMPLES / "kubernetes" / "iris-endpoint.yaml")
    apply(api_client, endpoint)
    wait_for(
        lambda: cluster.get("policy/v1", "poddisruptionbudgets", "iris-r1", "vision"), what="revision objects"
    )
    cluster.drop_watches(abrupt=True)
    cluster.mark_deployment_ready("vision", "iris-r1")
    cluster.drop_watches()
    wait_for(
        lambda: (
            (c := ready_condition(get_cr(cluster, "modelendpoints", "iris", "vision")))
            and c["status"] == "True"
        ),
        timeout=20,
        what="Ready despite faults",
    )
    wait_for(lambda: all(rule.exhausted for rule in rules), what="every injected fault hit")
    ready = ready_condition(get_cr(cluster, "modelendpoints", "iris", "vision"))
    assert ready is not None and ready["status"] == "True"

    cluster.fail("DELETE", r"/deployments/iris-r1", 503, times=2)
    k8s.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, "vision", "modelendpoints", "iris"
    )
    wait_for(
        lambda: absent(cluster, f"{GROUP}/{VERSION}", "modelendpoints", "iris", "vision"),
        timeout=20,
        what="gone",
    )
    for api_version, plural in (
        ("apps/v1", "deployments"),
        ("v1", "services"),
        ("policy/v1", "poddisruptionbudgets"),
    ):
        assert absent(cluster, api_version, plural, "iris-r1", "vision"), plural


def test_kubectl_shows_printer_columns_of_operated_endpoint(
    cluster: KubernetesApiEmulator, api_client: k8s.ApiClient, operator: RunningOperator, kubeconfig: Path
) -> None:
    (endpoint,) = load_documents(EXAMPLES / "kubernetes" / "iris-endpoint.yaml")
    apply(api_client, endpoint)
    wait_for(lambda: cluster.get("apps/v1", "deployments", "iris-r1", "vision"), what="Deployment")
    cluster.mark_deployment_ready("vision", "iris-r1")
    wait_for(
        lambda: (get_cr(cluster, "modelendpoints", "iris", "vision").get("status") or {}).get(
            "readyReplicas"
        ),
        what="ready",
    )
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", "modelendpoints", "-n", "vision"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "READY", "REPLICAS", "URL"]
    assert row.split()[0] == "iris" and "/vision/iris" in row
