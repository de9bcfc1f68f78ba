"""Jobs -> suspended batch/v1 Jobs; Teams -> namespace, quota ceiling, defaults and network policy."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api.job import Job
from pilothouse.api.registry import parse_manifest
from pilothouse.api.team import Team
from pilothouse.runtime.kubernetes.builders import (
    KubernetesConfig,
    build_job,
    build_team,
    suspend_patch,
    unsuspend_patch,
)
from pilothouse.runtime.kubernetes.builders.quantities import add_quantities
from pilothouse.runtime.kubernetes.builders.team import quota_hard

CONFIG = KubernetesConfig()
UID = "0b7d2c5e-8f4a-4a43-b4de-1d7f0a5b2c11"


def job(spec: dict[str, Any], name: str = "finetune", labels: dict[str, str] | None = None) -> Job:
    obj = parse_manifest(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": "vision", "uid": UID, "labels": labels or {}},
            "spec": spec,
        }
    )
    assert isinstance(obj, Job)
    return obj


def team(spec: dict[str, Any], uid: str | None = UID) -> Team:
    meta: dict[str, Any] = {"name": "vision"}
    if uid:
        meta["uid"] = uid
    obj = parse_manifest(
        {"apiVersion": "pilothouse.dev/v1alpha1", "kind": "Team", "metadata": meta, "spec": spec}
    )
    assert isinstance(obj, Team)
    return obj


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(target)
    for key, value in patch.items():
        out[key] = merge_patch(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def test_gang_job_is_suspended_indexed_and_preemption_safe(k8s_valid: Any) -> None:
    batch = build_job(
        job(
            {
                "image": "registry.example.com/trainer:2",
                "workers": 4,
                "resources": {"accelerators": {"nvidia.com/gpu": 8}, "memory": "256Gi", "cpu": "32"},
                "maxRetries": 2,
                "activeDeadlineSeconds": 86400,
                "preemptionGracePeriodSeconds": 120,
                "priorityClassName": "high",
            }
        ),
        CONFIG,
    )
    k8s_valid([batch])
    spec = batch["spec"]
    assert spec["suspend"] is True
    assert (spec["parallelism"], spec["completions"], spec["completionMode"]) == (4, 4, "Indexed")
    assert spec["backoffLimit"] == 2 and spec["activeDeadlineSeconds"] == 86400
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in spec[
        "podFailurePolicy"
    ]["rules"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] == 120
    (container,) = pod["containers"]
    assert container["resources"]["limits"] == {"memory": "256Gi", "nvidia.com/gpu": "8"}
    assert {"name": "PILOTHOUSE_WORKERS", "value": "4"} in container["env"]
    assert batch["metadata"]["ownerReferences"][0]["uid"] == UID
    assert batch["metadata"]["labels"]["pilothouse.dev/priority-class"] == "high"
    assert "priorityClassName" not in pod  # our classes order the queue; no cluster PriorityClass needed


def test_admission_and_preemption_are_merge_patches(k8s_valid: Any) -> None:
    batch = build_job(job({"command": ["python", "train.py"], "env": {"EPOCHS": "3"}}), CONFIG)
    admitted = merge_patch(batch, unsuspend_patch())
    assert admitted["spec"]["suspend"] is False and admitted["spec"]["template"] == batch["spec"]["template"]
    preempted = merge_patch(admitted, suspend_patch())
    assert preempted == batch
    container = batch["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == CONFIG.job_base_image and container["command"] == ["python", "train.py"]
    assert {"name": "EPOCHS", "value": "3"} in container["env"]
    k8s_valid([batch])


def test_long_job_name_leaves_room_for_the_index_hostname(k8s_valid: Any) -> None:
    batch = build_job(job({"command": ["x"], "workers": 1000}, name="j" * 63), CONFIG)
    k8s_valid([batch])  # <name>-999 must still be a DNS label
    assert len(batch["metadata"]["name"]) + len("-999") <= 63


def test_team_objects(k8s_valid: Any) -> None:
    objects = build_team(
        team(
            {
                "cohort": "research",
                "quotas": {
                    "nvidia.com/gpu": {"nominal": 8, "borrowingLimit": 4},
                    "cpu": {"nominal": "64"},
                    "memory": {"nominal": "512Gi", "borrowingLimit": "256Gi"},
                },
            }
        ),
        CONFIG,
    )
    k8s_valid(objects)
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    namespace = by_kind["Namespace", "vision"]
    assert "ownerReferences" not in namespace["metadata"]  # deleting a Team never deletes the namespace
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    quota = by_kind["ResourceQuota", "pilothouse-quota"]
    assert quota["spec"]["hard"] == {
        "requests.memory": "768Gi",
        "limits.memory": "768Gi",
        "requests.nvidia.com/gpu": "12",
    }
    assert quota["metadata"]["ownerReferences"][0]["kind"] == "Team"
    limits = by_kind["LimitRange", "pilothouse-defaults"]["spec"]["limits"][0]
    assert limits["type"] == "Container" and set(limits["defaultRequest"]) == {"cpu", "memory"}
    deny = by_kind["NetworkPolicy", "pilothouse-default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"]
    (rule,) = deny["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "pilothouse-system"}}
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "pilothouse-gateway"


def test_team_without_ceilings_has_no_quota_object(k8s_valid: Any) -> None:
    objects = build_team(team({"quotas": {"nvidia.com/gpu": {"nominal": 8}}}, uid=None), CONFIG)
    k8s_valid(objects)
    assert "ResourceQuota" not in {o["kind"] for o in objects}
    assert all("ownerReferences" not in o["metadata"] for o in objects)


@pytest.mark.parametrize(
    ("quotas", "hard"),
    [
        ({}, {}),
        ({"cpu": {"nominal": "500m", "borrowingLimit": "1.5"}}, {"requests.cpu": "2"}),
        ({"cpu": {"nominal": "250m", "borrowingLimit": "0.5"}}, {"requests.cpu": "750m"}),
        (
            {"memory": {"nominal": "1G", "borrowingLimit": "512Mi"}},
            {"requests.memory": "1536870912", "limits.memory": "1536870912"},
        ),
        ({"amd.com/gpu": {"nominal": 2, "borrowingLimit": 0}}, {"requests.amd.com/gpu": "2"}),
        ({"nvidia.com/gpu": {"nominal": 2, "lendingLimit": 1}}, {}),
    ],
)
def test_quota_ceiling_is_nominal_plus_borrowing_limit(quotas: dict[str, Any], hard: dict[str, str]) -> None:
    assert quota_hard(team({"quotas": quotas})) == hard


def test_add_quantities_reads_like_kubectl() -> None:
    assert add_quantities("64Gi", "34359738368") == "96Gi"
    assert add_quantities("1", "500m") == "1500m"
    assert add_quantities("8", "4") == "12"
