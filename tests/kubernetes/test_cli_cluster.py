"""The real CLI against a cluster: ``pilothouse --kubeconfig FILE apply|get|describe|rollout|logs|delete``.

The CLI runs as a subprocess (``python -m pilothouse.cli``) against the API emulator, with the operator
running in-process (``RunningOperator``), exactly as a user's CLI talks to a cluster the operator runs
on. With ``$PILOTHOUSE_TEST_KUBECONFIG`` the same test targets that real cluster (see
``docs/kubernetes.md``); the steps that need the emulator's status helpers (a Deployment becoming
ready) are skipped there.

Each CLI call is a fresh Python process that imports the official client (~2 s of CPU, most of it
``CoreV1Api``), so the read-only calls made once the endpoint is Ready run concurrently, and what the
remaining verbs read (history, logs, a repeated apply) is checked through ``KubeClient`` in-process.

``test_cluster_errors_keep_the_api_error_shape`` checks the error mapping in-process (``KubeClient`` on
the emulator, no operator): the answers the CLI prints one line per field of.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator import KubernetesApiEmulator
from operator_harness import EXAMPLES, KubeTarget, RunningOperator, wait_for
from test_operator import absent

from kubernetes import client as k8s
from pilothouse.api.meta import GROUP, VERSION, get_condition
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import resolve_kind
from pilothouse.client import ApiError
from pilothouse.client.kube import KubeClient
from pilothouse.client.manifests import load_manifests

IRIS = EXAMPLES / "kubernetes" / "iris-endpoint.yaml"
ME = resolve_kind("modelendpoint")
LOCAL_MODEL = """\
apiVersion: pilothouse.dev/v1alpha1
kind: ModelEndpoint
metadata: {name: local, namespace: vision}
spec:
  model: {uri: ./model.joblib, format: sklearn}
"""


def start(kubeconfig: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pilothouse.cli", "--kubeconfig", str(kubeconfig), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cli(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_all(kubeconfig, list(args))[0]


def run_all(kubeconfig: Path, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run CLI commands concurrently; their results in order."""
    procs = [(command, start(kubeconfig, *command)) for command in commands]
    results = []
    for command, proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(command, proc.returncode, stdout, stderr))
    return results


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"pilothouse {' '.join(result.args)} failed:\n{result.stderr}"
    return result.stdout


@pytest.fixture
def operator(kube_target: KubeTarget) -> Iterator[RunningOperator]:
    with RunningOperator(kube_target.api_client, resync_seconds=5.0) as running:
        yield running


@pytest.fixture
def no_iris(kube_target: KubeTarget) -> None:
    """A real cluster may still hold the endpoint of an earlier, failed run."""
    if kube_target.emulator is None:
        custom = k8s.CustomObjectsApi(kube_target.api_client)
        try:
            custom.delete_namespaced_custom_object(GROUP, VERSION, "vision", "modelendpoints", "iris")
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise


def endpoint(kube_target: KubeTarget) -> ModelEndpoint:
    with KubeClient.from_api_client(kube_target.api_client) as client:
        obj = client.get(ME, "vision", "iris")
    assert isinstance(obj, ModelEndpoint)
    return obj


def test_cli_manages_an_endpoint_on_a_cluster(
    kube_target: KubeTarget, no_iris: None, operator: RunningOperator, tmp_path: Path
) -> None:
    kubeconfig, emulator = kube_target.kubeconfig, kube_target.emulator
    assert "modelendpoint.pilothouse.dev/iris created" in ok(cli(kubeconfig, "apply", "-f", str(IRIS)))
    wait_for(lambda: endpoint(kube_target).status.latestRevision == 1, what="the operator's first status")
    if emulator is not None:
        wait_for(lambda: emulator.get("apps/v1", "deployments", "iris-r1", "vision"), what="revision 1")
        emulator.mark_deployment_ready("vision", "iris-r1")
        wait_for(lambda: endpoint(kube_target).status.readyReplicas == 1, what="iris Ready")

    (tmp_path / "local.yaml").write_text(LOCAL_MODEL)
    table, as_json, described, ghost, local = run_all(
        kubeconfig,
        ["get", "modelendpoints", "-n", "vision"],
        ["get", "me", "iris", "-n", "vision", "-o", "json"],
        ["describe", "me", "iris", "-n", "vision"],
        ["get", "me", "ghost", "-n", "vision"],
        ["apply", "-f", str(tmp_path / "local.yaml")],
    )
    header, row = ok(table).splitlines()[:2]
    assert header.split()[:3] == ["NAME", "READY", "REPLICAS"]
    assert row.split()[0] == "iris"
    doc = json.loads(ok(as_json))
    assert doc["kind"] == "ModelEndpoint" and doc["spec"]["model"]["uri"].startswith("s3://")
    assert doc["status"]["url"].endswith("/vision/iris")
    if emulator is not None:
        ready = get_condition(ModelEndpoint.model_validate(doc).status.conditions, "Ready")
        assert ready is not None and ready.status == "True"
        assert "iris-r1-000" in ok(described)
        assert "http://iris-r1.vision.svc.cluster.local:80" in described.stdout
        assert "RevisionCreated" in described.stdout  # events: the core/v1 Events our recorder wrote
    else:
        assert "Replicas:" in ok(described)
    assert ghost.returncode == 1 and "not found" in ghost.stderr and "Traceback" not in ghost.stderr
    assert local.returncode == 1
    assert local.stderr.startswith("error: spec.model.uri: ") and "is a local file" in local.stderr

    # What the other verbs read, through the same client in-process (a CLI process costs ~2 s each).
    with KubeClient.from_api_client(kube_target.api_client) as client:
        (manifest,) = load_manifests([str(IRIS)])
        assert client.apply(manifest.object).action == "unchanged"  # kopf's annotations are kept
        (revision,) = client.history(ME, "vision", "iris")
        assert revision["spec"]["model"]["uri"] == "s3://pilothouse-examples/iris/model.joblib"
        assert list(client.logs(ME, "vision", "iris", tail=5)) == [] or emulator is None  # no pods here

    deleted = ok(cli(kubeconfig, "delete", "me", "iris", "-n", "vision"))
    assert "modelendpoint.pilothouse.dev/iris deleted" in deleted

    def gone() -> bool:
        try:
            endpoint(kube_target)
        except ApiError as exc:
            return exc.reason == "NotFound"
        return False

    wait_for(gone, what="the endpoint gone (the operator's finalizer released)")
    if emulator is not None:
        assert absent(emulator, "apps/v1", "deployments", "iris-r1", "vision")


def test_cluster_errors_keep_the_api_error_shape(
    cluster: KubernetesApiEmulator, api_client: k8s.ApiClient
) -> None:
    (manifest,) = load_manifests([str(IRIS)])
    obj = manifest.object
    assert isinstance(obj, ModelEndpoint)
    with KubeClient.from_api_client(api_client) as client:
        with pytest.raises(ApiError) as missing:
            client.get(ME, "vision", "iris")
        assert (missing.value.code, missing.value.reason) == (404, "NotFound")

        assert client.apply(obj, dry_run=True).action == "created"  # dryRun=All: nothing stored
        with pytest.raises(ApiError):
            client.get(ME, "vision", "iris")
        stored = client.apply(obj).object
        with pytest.raises(ApiError) as exists:
            client.create(obj)
        assert (exists.value.code, exists.value.reason) == (409, "AlreadyExists")

        relabelled = stored.model_copy(deep=True)
        relabelled.metadata.labels = {"tier": "gold"}
        client.replace(relabelled)
        with pytest.raises(ApiError) as stale:
            client.replace(stored)  # its resourceVersion is no longer current
        assert (stale.value.code, stale.value.reason) == (409, "Conflict")

        # Past the models (as another tool could write it), the CRD's CEL rule answers, field by field.
        bad = obj.model_copy(deep=True)
        bad.metadata.name = "bad"
        bad.spec.autoscaling = bad.spec.autoscaling.model_copy(update={"minReplicas": 5, "maxReplicas": 2})
        with pytest.raises(ApiError) as invalid:
            client.create(bad)
        assert (invalid.value.code, invalid.value.reason) == (422, "Invalid")
        assert [c["field"] for c in invalid.value.causes] == ["spec.autoscaling"]

        local = obj.model_copy(deep=True)
        local.spec.model = local.spec.model.model_copy(update={"uri": "/models/iris.joblib"})
        with pytest.raises(ApiError) as admitted:
            client.create(local)
        assert admitted.value.reason == "Invalid"
        assert [c["field"] for c in admitted.value.causes] == ["spec.model.uri"]

        assert [h["generation"] for h in client.history(ME, "vision", "iris")] == [1]
        assert client.replicas(ME, "vision", "iris") == []  # no operator here: no Deployment
        assert client.version()["runtime"] == "kubernetes"

    with KubeClient.from_kubeconfig("/nonexistent/kubeconfig", None) as broken:
        with pytest.raises(ApiError) as unusable:
            broken.list(ME, "vision")
        assert unusable.value.reason == "InvalidConfiguration"
        assert not broken.healthy()
