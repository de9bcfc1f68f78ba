"""The install bundle: valid objects, least-privilege RBAC, and deploy/kubernetes/ equal to what it generates."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pilothouse.runtime.kubernetes.builders import KubernetesConfig, install_objects
from pilothouse.runtime.kubernetes.bundle import install_files

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy" / "kubernetes"
REGENERATE = "python -m pilothouse.runtime.kubernetes.bundle deploy/kubernetes"
OBJECTS = install_objects(KubernetesConfig())


def _kinds(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((o["kind"], o["metadata"]["name"]) for o in objects)


def test_bundle_objects_are_valid(k8s_valid: Any) -> None:
    k8s_valid(OBJECTS)
    assert _kinds(OBJECTS) == sorted(
        [
            ("CustomResourceDefinition", "jobs.pilothouse.dev"),
            ("CustomResourceDefinition", "modelendpoints.pilothouse.dev"),
            ("CustomResourceDefinition", "teams.pilothouse.dev"),
            ("Namespace", "pilothouse-system"),
            ("ServiceAccount", "pilothouse-operator"),
            ("ClusterRole", "pilothouse-operator"),
            ("ClusterRoleBinding", "pilothouse-operator"),
            ("Role", "pilothouse-operator"),
            ("RoleBinding", "pilothouse-operator"),
            ("Deployment", "pilothouse-operator"),
            ("ServiceAccount", "pilothouse-gateway"),
            ("ClusterRole", "pilothouse-gateway"),
            ("ClusterRoleBinding", "pilothouse-gateway"),
            ("Deployment", "pilothouse-gateway"),
            ("Service", "pilothouse-gateway"),
        ]
    )
    assert [o["kind"] for o in OBJECTS[:4]] == ["CustomResourceDefinition"] * 3 + ["Namespace"]


def _rules(name: str) -> list[dict[str, Any]]:
    role = next(o for o in OBJECTS if o["kind"] == "ClusterRole" and o["metadata"]["name"] == name)
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def _allowed(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


def test_operator_rbac_is_least_privilege() -> None:
    rules = _rules("pilothouse-operator")
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
    assert not any("secrets" in r["resources"] for r in rules)
    must = [
        ("pilothouse.dev", "modelendpoints", "watch"),
        ("pilothouse.dev", "modelendpoints/status", "patch"),
        ("pilothouse.dev", "jobs/finalizers", "update"),
        ("apps", "deployments", "create"),
        ("apps", "deployments/scale", "patch"),
        ("batch", "jobs", "patch"),
        ("policy", "poddisruptionbudgets", "create"),
        ("", "services", "delete"),
        ("", "namespaces", "create"),
        ("", "resourcequotas", "patch"),
        ("", "limitranges", "create"),
        ("networking.k8s.io", "networkpolicies", "create"),
        ("", "events", "create"),
        ("events.k8s.io", "events", "patch"),
        ("", "pods", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ]
    for group, resource, verb in must:
        assert _allowed(rules, group, resource, verb), (group, resource, verb)
    must_not = [
        ("", "namespaces", "delete"),  # deleting a Team never deletes its namespace
        ("pilothouse.dev", "modelendpoints", "create"),  # users create them; the operator reconciles
        ("pilothouse.dev", "teams", "delete"),
        ("", "pods", "delete"),
        ("coordination.k8s.io", "leases", "get"),  # kopf peering is not Lease-based; we run --standalone
        ("kopf.dev", "clusterkopfpeerings", "get"),
    ]
    for group, resource, verb in must_not:
        assert not _allowed(rules, group, resource, verb), (group, resource, verb)


def test_gateway_rbac_is_read_only() -> None:
    for rule in _rules("pilothouse-gateway"):
        assert set(rule["verbs"]) <= {"get", "list", "watch"}


def test_deploy_tree_matches_the_generator() -> None:
    expected = install_files()
    actual = {str(p.relative_to(DEPLOY)): p.read_text(encoding="utf-8") for p in DEPLOY.rglob("*.yaml")}
    assert set(actual) == set(expected), f"deploy/kubernetes differs in files: run {REGENERATE}"
    for path, text in expected.items():
        assert actual[path] == text, f"deploy/kubernetes/{path} is stale: run {REGENERATE}"
    from_files = [
        d for path in expected if path != "kustomization.yaml" for d in yaml.safe_load_all(actual[path]) if d
    ]
    assert _kinds(from_files) == _kinds(OBJECTS)


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH")
    return kubectl


def test_kubectl_kustomize_builds_the_bundle() -> None:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert _kinds(built) == _kinds(OBJECTS)


def test_kubectl_client_dry_run(tmp_path: Path) -> None:
    """``apply --dry-run=client`` still needs API discovery (a RESTMapper) even with --validate=false."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: none\n"
        "clusters: [{name: none, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: none, context: {cluster: none}}]\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            _kubectl(),
            "--kubeconfig",
            str(kubeconfig),
            "apply",
            "-k",
            str(DEPLOY),
            "--dry-run=client",
            "--validate=false",
            "-o",
            "yaml",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0 and (
        "unable to recognize" in result.stderr or "connection refused" in result.stderr
    ):
        pytest.skip(
            "kubectl apply --dry-run=client needs API discovery (no cluster here); "
            "the API-emulator tests run kubectl against a served API instead"
        )
    assert result.returncode == 0, result.stderr
