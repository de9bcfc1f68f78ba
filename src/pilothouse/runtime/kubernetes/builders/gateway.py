"""The data-plane gateway on a cluster: a Deployment and a Service in the system namespace.

The gateway is the one stable URL per endpoint (``/<namespace>/<endpoint>/...``); it forwards to the
per-revision Services (``<endpoint>-r<N>.<namespace>.svc``), splitting traffic during rollouts and
buffering while an endpoint scales from zero. It reads only ModelEndpoints and Services, so its own
ServiceAccount gets read-only access to exactly those. Team namespaces admit ingress from pods with
these labels (see ``team.py``), so the labels are constants here.
"""

from __future__ import annotations

from typing import Any

from pilothouse.runtime.kubernetes.builders import podspec
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.builders.names import COMPONENT, metadata, standard_labels

GATEWAY_NAME = "pilothouse-gateway"
GATEWAY_COMPONENT = "gateway"
PORT_NAME = "http"


ROUTES_CONFIGMAP = "pilothouse-routes"
ROUTES_MOUNT = "/etc/pilothouse/routes"


def gateway_labels() -> dict[str, str]:
    return standard_labels(name=GATEWAY_NAME, instance=GATEWAY_NAME, component=GATEWAY_COMPONENT)


def gateway_selector() -> dict[str, str]:
    return {"app.kubernetes.io/name": GATEWAY_NAME, COMPONENT: GATEWAY_COMPONENT}


def _gateway_rbac(config: KubernetesConfig) -> list[dict[str, Any]]:
    labels = gateway_labels()
    read = ["get", "list", "watch"]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(GATEWAY_NAME, config.system_namespace, labels),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": metadata(GATEWAY_NAME, None, labels),
            "rules": [
                {"apiGroups": ["pilothouse.dev"], "resources": ["modelendpoints"], "verbs": read},
                {"apiGroups": [""], "resources": ["services"], "verbs": read},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": metadata(GATEWAY_NAME, None, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": GATEWAY_NAME},
            "subjects": [
                {"kind": "ServiceAccount", "name": GATEWAY_NAME, "namespace": config.system_namespace}
            ],
        },
    ]


def gateway_objects(config: KubernetesConfig) -> list[dict[str, Any]]:
    """ServiceAccount, read-only ClusterRole + binding, Deployment and Service of the gateway."""
    labels = gateway_labels()
    selector = gateway_selector()
    port = config.server_port
    probe = {"httpGet": {"path": "/healthz", "port": PORT_NAME}, "periodSeconds": 5, "timeoutSeconds": 2}
    container = {
        "name": GATEWAY_COMPONENT,
        "image": config.gateway_image,
        "command": ["python", "-m", "pilothouse.serving.gateway"],
        "args": ["--host", "0.0.0.0", "--port", str(port), "--routes-dir", ROUTES_MOUNT],
        "env": podspec.base_env(),
        "ports": [{"name": PORT_NAME, "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": podspec.container_security_context(),
        "volumeMounts": [
            {"name": podspec.TMP_VOLUME, "mountPath": "/tmp"},  # noqa: S108 - an emptyDir
            {"name": "routes", "mountPath": ROUTES_MOUNT, "readOnly": True},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(GATEWAY_NAME, config.system_namespace, labels),
        "spec": {
            "replicas": config.gateway_replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": GATEWAY_NAME,
                    "enableServiceLinks": False,
                    "securityContext": podspec.pod_security_context(config),
                    "containers": [container],
                    "volumes": [
                        {"name": podspec.TMP_VOLUME, "emptyDir": {}},
                        # The operator writes each endpoint's route here; the kubelet keeps the files current.
                        {"name": "routes", "configMap": {"name": ROUTES_CONFIGMAP, "optional": True}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(GATEWAY_NAME, config.system_namespace, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": 80,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                    "appProtocol": "http",
                }
            ],
        },
    }
    return [*_gateway_rbac(config), deployment, service]
