"""The install bundle: CRDs, the system namespace, the operator (least-privilege RBAC) and the gateway.

The operator's ClusterRole lists exactly the verbs its reconcilers use:

- our kinds: read, ``patch``/``update`` (kopf writes its finalizer and progress annotations on the
  object), ``status`` writes, and ``update`` on ``finalizers`` — the OwnerReferencesPermissionEnforcement
  admission plugin requires it to set ``blockOwnerDeletion`` on children it owns;
- what it builds: Deployments (+ ``scale`` for the autoscaler), Services, PodDisruptionBudgets, batch
  Jobs (create suspended, patch to admit/preempt, delete), ResourceQuotas, LimitRanges, NetworkPolicies;
  Namespaces without ``delete`` (deleting a Team never deletes its namespace);
- Pods read-only (replica state and the model server's termination message);
- Events ``create``/``patch`` (kopf posts handler progress and our reconcilers post reasons);
- CRDs ``list``/``watch``: kopf observes CRDs coming and going at run time.

The operator runs as one replica with ``strategy: Recreate`` and ``python -m pilothouse.operator
--standalone`` (the entry point registers the handlers explicitly; importing the package does not).
It also writes the gateway's routes into the ``pilothouse-routes`` ConfigMap of the system namespace
(a namespaced Role) and keeps spec history as ControllerRevisions. kopf's
peering (active/standby) uses its own ``KopfPeering`` CRDs, not ``coordination.k8s.io`` Leases; we
install neither, and grant neither, until we run more than one replica.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api.crd import all_crds
from pilothouse.api.meta import GROUP
from pilothouse.api.registry import KINDS
from pilothouse.runtime.kubernetes.builders import podspec
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.builders.gateway import gateway_objects
from pilothouse.runtime.kubernetes.builders.names import metadata, standard_labels

OPERATOR_NAME = "pilothouse-operator"
READ = ["get", "list", "watch"]
WRITE = ["get", "list", "watch", "create", "patch", "update", "delete"]


def operator_labels() -> dict[str, str]:
    return standard_labels(name=OPERATOR_NAME, instance=OPERATOR_NAME, component="operator")


def operator_rules() -> list[dict[str, Any]]:
    plurals = sorted(info.plural for info in KINDS.values())
    return [
        {"apiGroups": [GROUP], "resources": plurals, "verbs": ["get", "list", "watch", "patch", "update"]},
        {
            "apiGroups": [GROUP],
            "resources": [f"{p}/status" for p in plurals],
            "verbs": ["get", "patch", "update"],
        },
        {"apiGroups": [GROUP], "resources": [f"{p}/finalizers" for p in plurals], "verbs": ["update"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": WRITE},
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch", "update"]},
        {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": WRITE},
        {"apiGroups": [""], "resources": ["services", "resourcequotas", "limitranges"], "verbs": WRITE},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": WRITE},
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": WRITE},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": WRITE},
        {
            "apiGroups": [""],
            "resources": ["namespaces"],
            "verbs": ["get", "list", "watch", "create", "patch", "update"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": READ},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        },
    ]


def _operator(config: KubernetesConfig) -> list[dict[str, Any]]:
    labels = operator_labels()
    ns = config.system_namespace
    selector = {"app.kubernetes.io/name": OPERATOR_NAME}
    health = {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 10, "timeoutSeconds": 2}
    container = {
        "name": "operator",
        "image": config.operator_image,
        "command": ["python", "-m", "pilothouse.operator"],
        "args": ["--standalone", "--liveness=http://0.0.0.0:8080/healthz"],
        "env": [*podspec.base_env(), {"name": "PILOTHOUSE_SYSTEM_NAMESPACE", "value": ns}],
        "ports": [{"name": "health", "containerPort": 8080, "protocol": "TCP"}],
        "livenessProbe": {**health, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": podspec.container_security_context(),
        "volumeMounts": [{"name": podspec.TMP_VOLUME, "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(OPERATOR_NAME, ns, labels)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": metadata(OPERATOR_NAME, None, labels),
            "rules": operator_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": metadata(OPERATOR_NAME, None, labels),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": OPERATOR_NAME,
            },
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": ns}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(OPERATOR_NAME, ns, labels),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["get", "list", "watch", "create", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(OPERATOR_NAME, ns, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": OPERATOR_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": ns}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(OPERATOR_NAME, ns, labels),
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # never two operators at once: no peering yet
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": OPERATOR_NAME,
                        "enableServiceLinks": False,
                        "securityContext": podspec.pod_security_context(config),
                        "containers": [container],
                        "volumes": [{"name": podspec.TMP_VOLUME, "emptyDir": {}}],
                    },
                },
            },
        },
    ]


def system_namespace(config: KubernetesConfig) -> dict[str, Any]:
    labels = standard_labels(name="pilothouse", instance="pilothouse", component="system")
    labels["pod-security.kubernetes.io/enforce"] = "restricted"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata(config.system_namespace, None, labels),
    }


def install_objects(config: KubernetesConfig) -> list[dict[str, Any]]:
    """Everything ``pilothouse install kubernetes`` applies, in apply order (CRDs and namespace first)."""
    return [*all_crds(), system_namespace(config), *_operator(config), *gateway_objects(config)]
