"""kubectl as a real client of the emulator: discovery, apply (create, unchanged, configured), tables, delete.

kubectl is the strictest client we have: it needs core discovery with ``groupVersion: v1``, list
``kind``s, server-side ``Table`` printing, the OpenAPI probes that tell it the server validates fields,
and watch-based ``delete --wait``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from emulator import KubernetesApiEmulator

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.dev}
spec:
  group: example.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              color: {type: string, enum: [red, blue], default: red}
"""


def _widget(name: str, size: object) -> str:
    return yaml.safe_dump(
        {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": size}}
    )


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}

    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["kubectl", *args], check=False, input=stdin, env=env, text=True, capture_output=True, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    return run


def test_kubectl_apply_get_and_delete_custom_resources(
    kubectl: Kubectl, emulator: KubernetesApiEmulator
) -> None:
    assert (
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.dev created"
        in kubectl("apply", "-f", "-", stdin=CRD).stdout
    )
    assert "widget.example.dev/w1 created" in kubectl("apply", "-f", "-", stdin=_widget("w1", 3)).stdout
    assert "unchanged" in kubectl("apply", "-f", "-", stdin=_widget("w1", 3)).stdout
    assert "configured" in kubectl("apply", "-f", "-", stdin=_widget("w1", 4)).stdout
    table = kubectl("get", "widgets").stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "COLOR", "AGE"], "the CRD's printer columns are shown"
    assert table[1].split()[:3] == ["w1", "4", "red"]
    assert kubectl("get", "wd", "w1", "-o", "jsonpath={.metadata.generation}").stdout == "2"

    rejected = kubectl("apply", "-f", "-", stdin=_widget("bad", 0), check=False)
    assert rejected.returncode != 0 and "spec.size" in rejected.stderr

    assert 'widget.example.dev "w1" deleted' in kubectl("delete", "widget", "w1").stdout
    assert "No resources found" in kubectl("get", "widgets").stderr


def test_kubectl_namespaces_and_builtin_resources(kubectl: Kubectl, emulator: KubernetesApiEmulator) -> None:
    names = [line.split()[0] for line in kubectl("get", "ns").stdout.splitlines()[1:]]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    namespace = yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    kubectl("apply", "-f", "-", stdin=namespace)
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "team-a", "labels": {"a": "b"}},
    }
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(config))
    assert kubectl("get", "configmaps", "-A", "-l", "a=b", "-o", "name").stdout.strip() == "configmap/c"
    assert "Active" in kubectl("get", "ns", "team-a").stdout
    kubectl("delete", "ns", "team-a")
    assert kubectl("get", "configmaps", "-A", "-o", "name").stdout.strip() == ""
    assert "NotFound" in kubectl("get", "ns", "team-a", check=False).stderr


def test_kubectl_sees_an_injected_503(kubectl: Kubectl, emulator: KubernetesApiEmulator) -> None:
    emulator.fail("GET", r"/api/v1/namespaces/default/configmaps", status=503, times=10)
    result = kubectl("get", "configmaps", check=False)
    assert result.returncode != 0 and "ServiceUnavailable" in result.stderr + result.stdout


def test_kubectl_apply_k_the_install_bundle(kubectl: Kubectl, emulator: KubernetesApiEmulator) -> None:
    """The repository's kustomization, as a user would install it: client dry run, then for real."""
    bundle = str(Path(__file__).resolve().parents[2] / "deploy" / "kubernetes")
    dry = kubectl("apply", "-k", bundle, "--dry-run=client")
    assert (
        "customresourcedefinition.apiextensions.k8s.io/modelendpoints.pilothouse.dev created (dry run)"
        in dry.stdout
    )
    assert "deployment.apps/pilothouse-operator created (dry run)" in dry.stdout
    applied = kubectl("apply", "-k", bundle)
    assert "namespace/pilothouse-system created" in applied.stdout
    assert "deployment.apps/pilothouse-gateway created" in applied.stdout
    names = kubectl("get", "crd", "-o", "name").stdout.split()
    assert {
        "customresourcedefinition.apiextensions.k8s.io/modelendpoints.pilothouse.dev",
        "customresourcedefinition.apiextensions.k8s.io/jobs.pilothouse.dev",
        "customresourcedefinition.apiextensions.k8s.io/teams.pilothouse.dev",
    } <= set(names)
