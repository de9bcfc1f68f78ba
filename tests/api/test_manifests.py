"""Manifest validation: short forms normalise, and every bad input names its field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilothouse.api import ManifestError, ModelEndpoint, parse_manifest, resolve_kind
from pilothouse.api.quantity import parse_quantity
from pilothouse.api.selectors import matches, parse_selector


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pilothouse.dev/v1alpha1",
        "kind": "ModelEndpoint",
        "metadata": {"name": "iris"},
        "spec": {"model": {"uri": "/models/iris.joblib"}, **spec},
    }


def test_real_world_short_forms_normalise() -> None:
    doc = manifest(
        model="registry.example/team/llm:1.2",
        resources={"accelerators": "nvidia.com/gpu: 2", "memory": "32Gi", "cpu": "500m"},
        autoscaling={"minReplicas": 2, "maxReplicas": 10, "targetUtilization": 70},
    )
    obj = parse_manifest(doc)
    assert isinstance(obj, ModelEndpoint)
    assert obj.spec.model.image == "registry.example/team/llm:1.2"
    assert obj.spec.model.kind == "image"
    assert obj.spec.resources.accelerators == {"nvidia.com/gpu": 2}
    assert obj.spec.resources.gpus == 2
    assert parse_quantity(obj.spec.resources.memory or "") == 32 * 2**30
    assert obj.metadata.namespace == "default"


@pytest.mark.parametrize(
    ("accelerators", "expected"),
    [
        ({"nvidia.com/gpu": 1}, {"nvidia.com/gpu": 1}),
        ("nvidia.com/gpu: 2", {"nvidia.com/gpu": 2}),
        ("nvidia.com/gpu: 2, amd.com/gpu: 1", {"nvidia.com/gpu": 2, "amd.com/gpu": 1}),
        (4, {"nvidia.com/gpu": 4}),
        ({"nvidia.com/gpu": 0}, {}),
    ],
)
def test_accelerator_forms(accelerators: Any, expected: dict[str, int]) -> None:
    obj = parse_manifest(manifest(resources={"accelerators": accelerators}))
    assert obj.spec.resources.accelerators == expected


@pytest.mark.parametrize(
    ("uri", "fmt"),
    [
        ("/m/a.joblib", "sklearn"),
        ("file:///m/a.pkl", "sklearn"),
        ("/m/a.onnx", "onnx"),
        ("/m/model.py", "python"),
    ],
)
def test_format_inferred_from_suffix(uri: str, fmt: str) -> None:
    obj = parse_manifest(manifest(model={"uri": uri}))
    assert obj.spec.model.format == fmt


def test_python_format_defaults_class_name() -> None:
    assert parse_manifest(manifest(model={"uri": "/m/model.py"})).spec.model.className == "Model"


def test_max_replicas_defaults_to_min() -> None:
    obj = parse_manifest(manifest(autoscaling={"minReplicas": 3}))
    assert obj.spec.autoscaling.maxReplicas == 3


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown top-level spec field", manifest(replicas=2), "spec.replicas", "unknown field"),
    (
        "mistyped nested field",
        manifest(autoscaling={"minReplica": 1}),
        "spec.autoscaling.minReplica",
        "unknown field",
    ),
    (
        "negative replicas",
        manifest(autoscaling={"minReplicas": -1}),
        "spec.autoscaling.minReplicas",
        "greater than or equal to 0",
    ),
    (
        "min > max",
        manifest(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
        "spec.autoscaling",
        "must be <= maxReplicas",
    ),
    (
        "bad quantity",
        manifest(resources={"memory": "32Gb"}),
        "spec.resources.memory",
        "not a Kubernetes quantity",
    ),
    ("negative quantity", manifest(resources={"cpu": "-1"}), "spec.resources.cpu", "must not be negative"),
    ("bool quantity", manifest(resources={"cpu": True}), "spec.resources.cpu", "not a Kubernetes quantity"),
    (
        "bad accelerator string",
        manifest(resources={"accelerators": "two gpus"}),
        "spec.resources.accelerators",
        "cannot parse",
    ),
    (
        "bad accelerator name",
        manifest(resources={"accelerators": {"gpu": 1}}),
        "spec.resources.accelerators",
        "invalid accelerator",
    ),
    ("two sources", manifest(model={"uri": "/m/a.joblib", "image": "x:1"}), "spec.model", "exactly one of"),
    ("no source", manifest(model={}), "spec.model", "exactly one of"),
    ("unknown format", manifest(model={"uri": "/m/a.bin"}), "spec.model", "format is required"),
    (
        "format not in enum",
        manifest(model={"uri": "/m/a.joblib", "format": "tensorflow"}),
        "spec.model.format",
        "sklearn",
    ),
    (
        "target over 100",
        manifest(autoscaling={"targetUtilization": 150}),
        "spec.autoscaling.targetUtilization",
        "100",
    ),
    ("missing spec.model", {**manifest(), "spec": {}}, "spec.model", "required field is missing"),
    ("empty command item", manifest(model={"command": ["python", ""]}), "spec.model", "non-empty"),
]


@pytest.mark.parametrize(("case", "doc", "path", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_field(case: str, doc: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc, source="endpoint.yaml")
    problems = {p.path: p.message for p in info.value.problems}
    assert path in problems, f"{case}: expected a problem at {path}, got {problems}"
    assert fragment in problems[path]
    assert str(info.value).startswith("endpoint.yaml: ")


@pytest.mark.parametrize("name", ["Iris", "iris_v2", "-iris", "iris-", "a" * 64, ""])
def test_invalid_names(name: str) -> None:
    doc = manifest()
    doc["metadata"]["name"] = name
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc)
    assert info.value.problems[0].path == "metadata.name"


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        ({**manifest(), "apiVersion": "v1"}, "apiVersion", "unknown apiVersion 'v1'"),
        ({k: v for k, v in manifest().items() if k != "apiVersion"}, "apiVersion", "required"),
        ({**manifest(), "kind": "Deployment"}, "kind", "unknown kind 'Deployment'"),
        (["not", "a", "mapping"], "", "must be a mapping"),
    ],
)
def test_envelope_errors(doc: Any, path: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc)
    assert info.value.problems[0].path == path
    assert fragment in info.value.problems[0].message


def test_invalid_label_rejected() -> None:
    doc = manifest()
    doc["metadata"]["labels"] = {"app": "has spaces"}
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc)
    assert info.value.problems[0].path == "metadata.labels"


@pytest.mark.parametrize("alias", ["me", "modelendpoint", "modelendpoints", "ModelEndpoint", "ME"])
def test_kind_aliases(alias: str) -> None:
    assert resolve_kind(alias).kind == "ModelEndpoint"


def test_unknown_kind_alias_lists_known() -> None:
    with pytest.raises(ManifestError, match=r"known: jobs, me, modelendpoints, teams\)"):
        resolve_kind("pods")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("1Ki", Decimal(1024)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1e3", Decimal(1000)),
        ("2k", Decimal(2000)),
        ("0.1", Decimal("0.1")),
        (".5", Decimal("0.5")),
    ],
)
def test_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "m", "k", "Ki", "Mi", "Gi", "M", "G"]))
def test_quantity_round_trip_property(number: int, suffix: str) -> None:
    factor = {
        "": 1,
        "m": Decimal("0.001"),
        "k": 1000,
        "Ki": 1024,
        "Mi": 2**20,
        "Gi": 2**30,
        "M": 10**6,
        "G": 10**9,
    }
    assert parse_quantity(f"{number}{suffix}") == number * Decimal(factor[suffix])


@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.from_regex(r"[a-z0-9]{1,5}", fullmatch=True)
    )
)
def test_selector_matches_own_labels(labels: dict[str, str]) -> None:
    selector = parse_selector(",".join(f"{k}={v}" for k, v in labels.items()))
    assert matches(selector, labels)
    if labels:
        key = next(iter(labels))
        assert not matches(selector, {**labels, key: labels[key] + "x"})


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=iris", {"app": "iris"}, True),
        ("app!=iris", {"app": "iris"}, False),
        ("app!=iris", {}, True),
        ("app in (iris, wine)", {"app": "wine"}, True),
        ("app notin (iris)", {"app": "iris"}, False),
        ("tier", {"tier": "x"}, True),
        ("!tier", {"tier": "x"}, False),
        ("app=iris,tier=canary", {"app": "iris", "tier": "stable"}, False),
    ],
)
def test_selector_table(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert matches(parse_selector(selector), labels) is expected
