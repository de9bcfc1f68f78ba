"""The offline validators must fail on what they claim to catch, or every green test above means nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import parse_manifest
from pilothouse.runtime.kubernetes.builders import KubernetesConfig, build_revision, workload_for

ME = parse_manifest(
    {
        "apiVersion": "pilothouse.dev/v1alpha1",
        "kind": "ModelEndpoint",
        "metadata": {"name": "llm", "namespace": "vision", "uid": "u-1"},
        "spec": {"model": "x/y:1"},
    }
)
assert isinstance(ME, ModelEndpoint)
GOOD = build_revision(workload_for(ME), KubernetesConfig()).all()


def broken(mutate: Any) -> list[dict[str, Any]]:
    objects = copy.deepcopy(GOOD)
    mutate(objects)
    return objects


def test_unknown_kind_fails_instead_of_warning(k8s_valid: Any) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"no Kubernetes 1\.33 schema for autoscaling/v2beta2"):
        k8s_valid(
            [
                {
                    "apiVersion": "autoscaling/v2beta2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": "x"},
                }
            ]
        )


def test_unknown_field_fails_in_strict_mode(k8s_valid: Any) -> None:
    def typo(objects: list[dict[str, Any]]) -> None:
        objects[0]["spec"]["replicaz"] = objects[0]["spec"].pop("replicas")

    with pytest.raises(pytest.fail.Exception, match="replicaz"):
        k8s_valid(broken(typo))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o[0]["spec"]["selector"]["matchLabels"].update(x="y"), "selector does not match"),
        (
            lambda o: o[1]["spec"]["selector"].update({"pilothouse.dev/revision": "9"}),
            "selects no pod template",
        ),
        (lambda o: o[0]["metadata"]["ownerReferences"][0].update(uid=""), "has no uid"),
        (lambda o: o[1]["metadata"].update(name="3d-r1"), "DNS-1035"),
        (
            lambda o: o[0]["spec"]["template"]["spec"]["containers"][0]["ports"][0].pop("name"),
            "no valid name",
        ),
        (
            lambda o: o[0]["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(
                readOnlyRootFilesystem=False
            ),
            "readOnlyRootFilesystem",
        ),
        (
            lambda o: o[0]["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile"),
            "seccompProfile",
        ),
        (
            lambda o: o[0]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0].update(
                name="nope"
            ),
            "undeclared volume",
        ),
    ],
)
def test_go_rules_catch_what_schemas_miss(mutate: Any, message: str, go_rules: Any) -> None:
    problems = go_rules(broken(mutate))
    assert any(message in p for p in problems), problems


def test_crd_validator_rejects_unknown_kinds(crd_validator: Any) -> None:
    problems = crd_validator.problems(
        {"apiVersion": "pilothouse.dev/v1alpha1", "kind": "Model", "metadata": {}}
    )
    assert [str(p) for p in problems] == ["kind: no CRD for pilothouse.dev/v1alpha1 Model"]
