"""The generated CRDs: valid CRD objects, structural schemas the API server accepts, nothing of the models lost."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from pydantic import BaseModel

from pilothouse.api.crd import all_crds, crd_for
from pilothouse.api.registry import KINDS
from pilothouse.runtime.kubernetes.bundle import install_files

REPO = Path(__file__).resolve().parents[3]
CRDS = all_crds()
_JUNCTORS = ("anyOf", "allOf", "oneOf", "not")
_FORBIDDEN_IN_JUNCTORS = {
    "type",
    "default",
    "title",
    "description",
    "nullable",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-validations",
    "x-kubernetes-embedded-resource",
}


def nodes(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every specified schema node (not junctor contents), with its dotted path."""
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from nodes(prop, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from nodes(schema["additionalProperties"], f"{path}.*")
    if isinstance(schema.get("items"), Mapping):
        yield from nodes(schema["items"], f"{path}[]")


def junctor_contents(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in _JUNCTORS:
        value = node.get(key)
        for child in value if isinstance(value, list) else [value] if isinstance(value, Mapping) else []:
            yield child
            yield from junctor_contents(child)
            yield from child.get("properties", {}).values()
            if isinstance(child.get("items"), Mapping):
                yield child["items"]


def open_schema(crd: Mapping[str, Any]) -> Mapping[str, Any]:
    schema: Mapping[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("crd", CRDS, ids=lambda c: c["metadata"]["name"])
def test_crd_is_a_valid_kubernetes_object(crd: dict[str, Any], k8s_valid: Any) -> None:
    k8s_valid([crd])


@pytest.mark.parametrize("crd", CRDS, ids=lambda c: c["metadata"]["name"])
def test_schema_is_structural(crd: dict[str, Any]) -> None:
    """The rules of apiextensions' ValidateStructural, plus CRD v1 API validation we rely on."""
    schema = open_schema(crd)
    assert "$ref" not in repr(schema) and "$defs" not in repr(schema)
    assert schema["type"] == "object" and "additionalProperties" not in schema
    assert schema["properties"]["metadata"] == {"type": "object"}, "metadata may only restrict name"
    for path, node in nodes(schema):
        untyped_ok = node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        assert node.get("type") or untyped_ok, f"{path}: a specified field needs a type"
        assert "title" not in node and "const" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node and node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        if "additionalProperties" in node:
            assert isinstance(node["additionalProperties"], Mapping), f"{path}: additionalProperties: false"
            assert "properties" not in node, f"{path}: properties and additionalProperties are exclusive"
        if node.get("type") == "array":
            assert "items" in node, path
        if "x-kubernetes-validations" in node:
            assert node.get("type") == "object", (
                f"{path}: CEL needs a typed node (untyped ones have no CEL type)"
            )
        if node.get("x-kubernetes-preserve-unknown-fields"):
            assert "type" not in node, f"{path}: preserve-unknown is only used for untyped short forms"
        if node.get("x-kubernetes-int-or-string"):
            continue  # its anyOf of integer/string is the one allowed exception
        for inner in junctor_contents(node):
            bad = _FORBIDDEN_IN_JUNCTORS & set(inner)
            assert not bad, f"{path}: {sorted(bad)} inside a junctor is not structural"


def test_preserve_unknown_fields_only_on_the_short_forms() -> None:
    found = {
        (crd["spec"]["names"]["kind"], path)
        for crd in CRDS
        for path, node in nodes(open_schema(crd))
        if node.get("x-kubernetes-preserve-unknown-fields")
    }
    assert found == {
        ("ModelEndpoint", ".spec.model"),
        ("ModelEndpoint", ".spec.resources.accelerators"),
        ("Job", ".spec.resources.accelerators"),
    }


@pytest.mark.parametrize("crd", CRDS, ids=lambda c: c["metadata"]["name"])
def test_every_cel_rule_compiles(crd: dict[str, Any]) -> None:
    env = celpy.Environment()
    rules = [r for _, node in nodes(open_schema(crd)) for r in node.get("x-kubernetes-validations", [])]
    for rule in rules:
        env.compile(rule["rule"])
        assert rule["message"]


def _model_fields(model: type[BaseModel]) -> Iterator[tuple[str, type[BaseModel] | None]]:
    for name, field in model.model_fields.items():
        nested = (
            field.annotation
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
            else None
        )
        yield name, nested


def _assert_covers(model: type[BaseModel], schema: Mapping[str, Any], path: str) -> None:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    for name, nested in _model_fields(model):
        assert name in schema.get("properties", {}), f"{path}.{name} is missing from the CRD schema"
        if nested is not None:
            _assert_covers(nested, schema["properties"][name], f"{path}.{name}")


@pytest.mark.parametrize("info", list(KINDS.values()), ids=lambda i: i.kind)
def test_every_model_field_is_in_the_schema(info: Any) -> None:
    schema = open_schema(crd_for(info))
    for part in ("spec", "status"):
        field = info.model.model_fields[part]
        _assert_covers(field.annotation, schema["properties"][part], part)


def test_names_scope_columns() -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in CRDS}
    assert set(by_kind) == {"ModelEndpoint", "Job", "Team"}
    me = by_kind["ModelEndpoint"]["spec"]
    assert me["group"] == "pilothouse.dev" and me["scope"] == "Namespaced"
    assert me["names"]["shortNames"] == ["me"] and me["names"]["categories"] == ["pilothouse", "all"]
    version = me["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Replicas": ".status.readyReplicas",
        "URL": ".status.url",
        "Age": ".metadata.creationTimestamp",
    }
    assert by_kind["Team"]["spec"]["scope"] == "Cluster"
    job_columns = [c["name"] for c in by_kind["Job"]["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert job_columns[:3] == ["Phase", "Workers", "Reason"] and job_columns[-1] == "Age"
    team_columns = [c["name"] for c in by_kind["Team"]["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert team_columns == ["Cohort", "Age"]


def test_quantities_are_int_or_string_and_defaults_survive() -> None:
    me = open_schema(next(c for c in CRDS if c["spec"]["names"]["kind"] == "ModelEndpoint"))
    memory = me["properties"]["spec"]["properties"]["resources"]["properties"]["memory"]
    assert memory["x-kubernetes-int-or-string"] is True and memory["nullable"] is True
    autoscaling = me["properties"]["spec"]["properties"]["autoscaling"]
    assert autoscaling["properties"]["targetUtilization"] == {
        "type": "integer",
        "description": "Percent of a replica's capacity",
        "minimum": 1,
        "maximum": 100,
        "default": 70,
    }
    team = open_schema(next(c for c in CRDS if c["spec"]["names"]["kind"] == "Team"))
    quota = team["properties"]["spec"]["properties"]["quotas"]["additionalProperties"]
    assert quota["properties"]["nominal"]["x-kubernetes-int-or-string"] is True
    weight = team["properties"]["spec"]["properties"]["weight"]
    assert weight["minimum"] == 0 and weight["exclusiveMinimum"] is True


def test_checked_in_crds_match_the_models() -> None:
    """Fails when a model changed and ``deploy/kubernetes/crds`` was not regenerated (see docs/kubernetes.md)."""
    expected = install_files()
    for crd in CRDS:
        relative = f"crds/{crd['metadata']['name']}.yaml"
        path = REPO / "deploy" / "kubernetes" / relative
        assert path.exists(), (
            f"{path} is missing: run python -m pilothouse.runtime.kubernetes.bundle deploy/kubernetes"
        )
        assert path.read_text(encoding="utf-8") == expected[relative], (
            f"{path} is stale: run python -m pilothouse.runtime.kubernetes.bundle deploy/kubernetes"
        )
        assert [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d] == [crd]
