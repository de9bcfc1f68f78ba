"""A ``Team`` as its namespace and the guard rails around it.

- **Namespace** ``<team>``: where the team's ModelEndpoints and Jobs live. Labelled to enforce the
  ``restricted`` Pod Security Standard, which every pod we build meets. It has no owner reference:
  deleting a Team must not cascade-delete every workload and secret in the namespace; the operator
  decides (and today leaves the namespace in place).
- **ResourceQuota** ``pilothouse-quota``: the *hard ceiling* the cluster enforces even if our queue is
  wrong or bypassed. For each resource with a ``borrowingLimit`` the ceiling is nominal + borrowing
  limit (the most the team may ever hold); a resource with no borrowing limit may borrow without bound
  from its cohort, so it gets no ceiling here and only the queue governs it. Accelerators map to
  ``requests.<name>`` (extended resources are quota'd by requests only); cpu to ``requests.cpu``;
  memory to ``requests.memory`` and ``limits.memory`` (our pods set memory limit = request). Suspended
  Jobs create no pods, so waiting work never consumes quota.
- **LimitRange** ``pilothouse-defaults``: defaults for containers that say nothing (a ``kubectl run``
  in the namespace), so the memory quota can always be evaluated. Our own containers always set resources.
- **NetworkPolicies**: default-deny ingress, except from the gateway's pods in the system namespace
  (to model servers) and between a Job's workers (gangs talk to each other: NCCL, torch.distributed).
"""

from __future__ import annotations

from typing import Any

from pilothouse.api.team import Team
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.builders.gateway import GATEWAY_COMPONENT, GATEWAY_NAME
from pilothouse.runtime.kubernetes.builders.names import (
    COMPONENT,
    JOB_LABEL,
    TEAM_LABEL,
    metadata,
    owner_references,
    standard_labels,
)
from pilothouse.runtime.kubernetes.builders.quantities import add_quantities

QUOTA_NAME = "pilothouse-quota"
LIMITS_NAME = "pilothouse-defaults"
DENY_NAME = "pilothouse-default-deny-ingress"
PEERS_NAME = "pilothouse-allow-job-peers"


def team_labels(team: Team, component: str) -> dict[str, str]:
    labels = standard_labels(name="pilothouse-team", instance=team.metadata.name, component=component)
    labels[TEAM_LABEL] = team.metadata.name
    return labels


def quota_hard(team: Team) -> dict[str, str]:
    """The ResourceQuota ``hard`` map: nominal + borrowingLimit per resource that has a borrowing limit."""
    hard: dict[str, str] = {}
    for resource, quota in sorted(team.spec.quotas.items()):
        if quota.borrowingLimit is None:
            continue
        ceiling = add_quantities(quota.nominal, quota.borrowingLimit)
        if resource == "cpu":
            hard["requests.cpu"] = ceiling
        elif resource == "memory":
            hard["requests.memory"] = hard["limits.memory"] = ceiling
        else:
            hard[f"requests.{resource}"] = ceiling
    return hard


def _namespace(team: Team) -> dict[str, Any]:
    labels = team_labels(team, "namespace")
    labels.update(
        {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted",
        }
    )
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata(team.metadata.name, None, labels)}


def _network_policies(
    team: Team, config: KubernetesConfig, owners: list[dict[str, object]]
) -> list[dict[str, Any]]:
    name = team.metadata.name
    from_gateway = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": config.system_namespace}},
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/name": GATEWAY_NAME, COMPONENT: GATEWAY_COMPONENT}
        },
    }
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(DENY_NAME, name, team_labels(team, "network-policy"), owners),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [from_gateway]}]},
    }
    job_pods = {"matchExpressions": [{"key": JOB_LABEL, "operator": "Exists"}]}
    peers = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(PEERS_NAME, name, team_labels(team, "network-policy"), owners),
        "spec": {
            "podSelector": job_pods,
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": job_pods}]}],
        },
    }
    return [deny, peers]


def build_team(team: Team, config: KubernetesConfig) -> list[dict[str, Any]]:
    """Namespace, ResourceQuota (when any resource has a ceiling), LimitRange and NetworkPolicies."""
    name = team.metadata.name
    owners = owner_references(team.kind, name, team.metadata.uid)
    objects = [_namespace(team)]
    hard = quota_hard(team)
    if hard:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": metadata(QUOTA_NAME, name, team_labels(team, "quota"), owners),
                "spec": {"hard": hard},
            }
        )
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": metadata(LIMITS_NAME, name, team_labels(team, "limits"), owners),
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "defaultRequest": {
                            "cpu": config.default_cpu_request,
                            "memory": config.default_memory_request,
                        },
                        "default": {"memory": config.default_memory_limit},
                    }
                ]
            },
        }
    )
    objects.extend(_network_policies(team, config, owners))
    return objects
