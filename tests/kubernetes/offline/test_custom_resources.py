"""Custom resources against the generated CRDs: the examples are admitted, broken manifests are not.

The CRD and the pydantic models must agree: a manifest the CLI accepts must be accepted by
``kubectl apply`` on a cluster (short forms included), and the cross-field rules reject with the
rule's own message. Where a structural schema cannot be as strict as pydantic (inside the two untyped
short-form nodes), the table below says so and the operator's re-validation is the backstop.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pilothouse.api.errors import ManifestError
from pilothouse.api.registry import parse_manifest

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (REPO / "examples").rglob("*.yaml"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def test_there_are_examples_of_every_kind() -> None:
    kinds = {doc["kind"] for path in EXAMPLES for doc in _docs(path)}
    assert kinds >= {"ModelEndpoint", "Job", "Team"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_example_is_admitted_by_the_crd(path: Path, crd_validator: Any) -> None:
    for doc in _docs(path):
        parse_manifest(doc, str(path))  # the CLI accepts it ...
        assert crd_validator.problems(doc) == [], path  # ... and so would the API server


ENDPOINT: dict[str, Any] = {
    "apiVersion": "pilothouse.dev/v1alpha1",
    "kind": "ModelEndpoint",
    "metadata": {"name": "llm", "namespace": "vision"},
    "spec": {"model": {"image": "registry.example.com/llm:1"}},
}
JOB: dict[str, Any] = {
    "apiVersion": "pilothouse.dev/v1alpha1",
    "kind": "Job",
    "metadata": {"name": "train", "namespace": "vision"},
    "spec": {"command": ["python", "train.py"]},
}
TEAM: dict[str, Any] = {
    "apiVersion": "pilothouse.dev/v1alpha1",
    "kind": "Team",
    "metadata": {"name": "vision"},
}


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return doc


_DELETE = object()

# (id, document, expected CRD message fragment or None when admitted, pydantic accepts?)
CASES: list[tuple[str, dict[str, Any], str | None, bool]] = [
    ("image-string", _with(ENDPOINT, "spec.model", "registry.example.com/team/llm:1.2"), None, True),
    ("uri-object", _with(ENDPOINT, "spec.model", {"uri": "s3://b/m.onnx"}), None, True),
    (
        "command-object",
        _with(ENDPOINT, "spec.model", {"command": ["serve"], "readinessPath": "/ok"}),
        None,
        True,
    ),
    (
        "accelerators-string",
        _with(ENDPOINT, "spec.resources", {"accelerators": "nvidia.com/gpu: 2"}),
        None,
        True,
    ),
    (
        "accelerators-two",
        _with(ENDPOINT, "spec.resources", {"accelerators": "nvidia.com/gpu: 2, amd.com/gpu: 1"}),
        None,
        True,
    ),
    ("accelerators-count", _with(ENDPOINT, "spec.resources", {"accelerators": 4}), None, True),
    (
        "accelerators-map",
        _with(ENDPOINT, "spec.resources", {"accelerators": {"nvidia.com/gpu": 2}}),
        None,
        True,
    ),
    ("quantity-int", _with(ENDPOINT, "spec.resources", {"cpu": 2, "memory": "32Gi"}), None, True),
    (
        "min-gt-max",
        _with(ENDPOINT, "spec.autoscaling", {"minReplicas": 5, "maxReplicas": 2}),
        "minReplicas must be <= maxReplicas",
        False,
    ),
    (
        "two-sources",
        _with(ENDPOINT, "spec.model", {"uri": "s3://b/m.onnx", "image": "x"}),
        "not valid under any of the given schemas",
        False,
    ),
    (
        "no-source",
        _with(ENDPOINT, "spec.model", {"format": "onnx"}),
        "not valid under any of the given schemas",
        False,
    ),
    ("no-model", _with(ENDPOINT, "spec.model", _DELETE), "'model' is a required property", False),
    ("unknown-field", _with(ENDPOINT, "spec.replicaz", 3), "Additional properties are not allowed", False),
    ("bad-quantity", _with(ENDPOINT, "spec.resources", {"memory": "32 gigs"}), "does not match", False),
    ("negative-quantity", _with(ENDPOINT, "spec.resources", {"cpu": -1}), "minimum", False),
    (
        "bad-accelerators",
        _with(ENDPOINT, "spec.resources", {"accelerators": "two gpus"}),
        "does not match",
        False,
    ),
    ("utilization-range", _with(ENDPOINT, "spec.autoscaling", {"targetUtilization": 101}), "maximum", False),
    (
        "job-two-sources",
        _with(JOB, "spec.image", "trainer:1"),
        "exactly one of command or image must be set",
        False,
    ),
    (
        "job-no-source",
        _with(JOB, "spec.command", _DELETE),
        "exactly one of command or image must be set",
        False,
    ),
    ("job-priority", _with(JOB, "spec.priorityClassName", "urgent"), "is not one of", False),
    ("job-empty-command", _with(JOB, "spec.command", []), "should be non-empty", False),
    ("job-empty-argument", _with(JOB, "spec.command", ["python", ""]), "should be non-empty", False),
    (
        "job-blank-image",
        _with(_with(JOB, "spec.command", _DELETE), "spec.image", "  "),
        "does not match",
        False,
    ),
    ("job-workers", _with(JOB, "spec.workers", 0), "minimum", False),
    (
        "team-quota",
        _with(TEAM, "spec", {"quotas": {"nvidia.com/gpu": {"nominal": 8, "borrowingLimit": "4"}}}),
        None,
        True,
    ),
    (
        "team-bad-resource",
        _with(TEAM, "spec", {"quotas": {"gpus": {"nominal": 8}}}),
        "resource names are cpu, memory",
        False,
    ),
    ("team-weight", _with(TEAM, "spec", {"weight": 0}), "minimum", False),
    ("team-cohort", _with(TEAM, "spec", {"cohort": "Not_A_Label"}), "does not match", False),
]

KNOWN_LOOSER: list[tuple[str, dict[str, Any]]] = [
    # Inside the untyped short-form nodes the CRD cannot check field types or unknown fields;
    # pydantic (CLI, server, operator) rejects these.
    ("model-unknown-field", _with(ENDPOINT, "spec.model", {"image": "x", "imagePullPolicy": "Always"})),
    ("accelerator-map-value", _with(ENDPOINT, "spec.resources", {"accelerators": {"nvidia.com/gpu": "two"}})),
]


@pytest.mark.parametrize(("doc", "message", "pydantic_ok"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_crd_and_models_agree(
    doc: dict[str, Any], message: str | None, pydantic_ok: bool, crd_validator: Any
) -> None:
    problems = [str(p) for p in crd_validator.problems(doc)]
    if message is None:
        assert problems == []
    else:
        assert any(message in p for p in problems), problems
    if pydantic_ok:
        parse_manifest(doc)
    else:
        with pytest.raises(ManifestError):
            parse_manifest(doc)


@pytest.mark.parametrize("doc", [c[1] for c in KNOWN_LOOSER], ids=[c[0] for c in KNOWN_LOOSER])
def test_known_gaps_are_caught_by_the_models(doc: dict[str, Any], crd_validator: Any) -> None:
    assert crd_validator.problems(doc) == []
    with pytest.raises(ManifestError):
        parse_manifest(doc)


def test_cel_rule_sees_defaults(crd_validator: Any) -> None:
    """minReplicas defaults to 1 before CEL runs, as on the API server: maxReplicas 0 is caught by the schema."""
    problems = [
        str(p) for p in crd_validator.problems(_with(ENDPOINT, "spec.autoscaling", {"maxReplicas": 1}))
    ]
    assert problems == []
    problems = [
        str(p)
        for p in crd_validator.problems(
            _with(ENDPOINT, "spec.autoscaling", {"minReplicas": 2, "maxReplicas": 1})
        )
    ]
    assert problems == ["spec.autoscaling: minReplicas must be <= maxReplicas"]
