"""One revision of a ``ModelEndpoint`` as a Deployment, a Service and a PodDisruptionBudget.

Each revision (spec generation) gets its own trio, named ``<endpoint>-r<revision>``, instead of one
Deployment rolled in place: the controller keeps the old revision serving until the new one is ready,
the gateway splits traffic between revision Services, and rollback is routing, not a redeploy. The same
revision-per-generation model runs on the embedded runtime, so both modes behave alike.

Replicas come from the caller (the controller's plan now, the autoscaler via ``/scale`` later); the
builder never decides them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.runtime.kubernetes.builders import podspec
from pilothouse.runtime.kubernetes.builders.artifact import artifact_for
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.builders.names import (
    COMPONENT,
    ENDPOINT_LABEL,
    REVISION_LABEL,
    TEAM_LABEL,
    metadata,
    owner_references,
    revision_name,
    standard_labels,
)
from pilothouse.runtime.protocol import OwnerRef, WorkloadSpec

MODEL_SERVER_COMPONENT = "model-server"
PORT_NAME = "http"
SERVICE_PORT = 80
LIVE_PATH = "/v2/health/live"
TERMINATION_LOG = "/dev/termination-log"
"""The kubelet's termination message file: the model server writes its one-line failure reason here."""


@dataclass(frozen=True)
class RevisionObjects:
    deployment: dict[str, Any]
    service: dict[str, Any]
    pdb: dict[str, Any]

    def all(self) -> list[dict[str, Any]]:
        return [self.deployment, self.service, self.pdb]


def workload_for(
    endpoint: ModelEndpoint, *, revision: int | None = None, replicas: int | None = None
) -> WorkloadSpec:
    """The runtime contract's view of an endpoint: what the controller would ask for.

    Without explicit values (``render``), the revision is the object's generation (1 before it is
    stored) and the replicas are ``autoscaling.minReplicas``.
    """
    meta = endpoint.metadata
    return WorkloadSpec(
        owner=OwnerRef(endpoint.kind, meta.namespace, meta.name, meta.uid or ""),
        revision=revision if revision is not None else (meta.generation or 1),
        replicas=replicas if replicas is not None else endpoint.spec.autoscaling.minReplicas,
        model=endpoint.spec.model,
        resources=endpoint.spec.resources,
        model_name=endpoint.spec.model.name or meta.name,
    )


def selector_labels(workload: WorkloadSpec) -> dict[str, str]:
    """The stable, unique subset of the pod labels: which endpoint, which revision, which role."""
    return {
        ENDPOINT_LABEL: workload.owner.name,
        REVISION_LABEL: str(workload.revision),
        COMPONENT: MODEL_SERVER_COMPONENT,
    }


def revision_labels(workload: WorkloadSpec) -> dict[str, str]:
    name = revision_name(workload.owner.name, workload.revision)
    labels = standard_labels(name=workload.owner.name, instance=name, component=MODEL_SERVER_COMPONENT)
    labels[TEAM_LABEL] = workload.owner.namespace
    labels.update(selector_labels(workload))
    return labels


def _http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _server_container(
    workload: WorkloadSpec, model_path: str | None, config: KubernetesConfig
) -> dict[str, Any]:
    model = workload.model
    port = config.server_port
    env = [
        *podspec.base_env(),
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "PILOTHOUSE_TERMINATION_LOG", "value": TERMINATION_LOG},
        {"name": "PILOTHOUSE_REPLICA_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "PORT", "value": str(port)},
        {"name": "HOST", "value": "0.0.0.0"},
        *({"name": k, "value": v} for k, v in sorted(workload.env.items())),
    ]
    container: dict[str, Any] = {"name": MODEL_SERVER_COMPONENT}
    startup_failures = max(config.startup_timeout_seconds // 5, 1)
    if model.kind == "uri":
        assert model.format is not None and model_path is not None
        args = ["--name", workload.model_name, "--model-uri", model_path, "--format", model.format]
        if model.className:
            args += ["--class-name", model.className]
        args += ["--host", "0.0.0.0", "--port", str(port)]
        container["image"] = config.model_server_image
        container["command"] = ["python", "-m", "pilothouse.serving.modelserver"]
        container["args"] = args
        liveness = _http_probe(LIVE_PATH, 10, 3)
        startup = _http_probe(LIVE_PATH, 5, startup_failures)
    else:
        if model.kind == "image":
            container["image"] = model.image
        else:
            container["image"] = config.model_server_image
            container["command"] = list(model.command or [])
        # A user server promises only its readiness path; liveness is "the port still accepts".
        liveness = {
            "tcpSocket": {"port": PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        }
        startup = _http_probe(model.readinessPath, 5, startup_failures)
    container.update(
        {
            "env": env,
            "ports": [{"name": PORT_NAME, "containerPort": port, "protocol": "TCP"}],
            "startupProbe": startup,
            "readinessProbe": _http_probe(model.readinessPath, 5, 3),
            "livenessProbe": liveness,
            "resources": podspec.container_resources(workload.resources),
            "securityContext": podspec.container_security_context(),
            "terminationMessagePath": TERMINATION_LOG,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    )
    return container


def _pod_spec(workload: WorkloadSpec, labels: Mapping[str, str], config: KubernetesConfig) -> dict[str, Any]:
    volumes, mounts = podspec.scratch_volumes(workload.resources)
    init_containers: list[dict[str, Any]] = []
    model_path: str | None = None
    if workload.model.kind == "uri":
        artifact = artifact_for(workload.model, config)
        volumes += artifact.volumes
        mounts += artifact.mounts
        init_containers = artifact.init_containers
        model_path = artifact.path
    container = _server_container(workload, model_path, config)
    container["volumeMounts"] = mounts
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,  # model servers never call the Kubernetes API
        "enableServiceLinks": False,  # no env var per Service in the team namespace
        "securityContext": podspec.pod_security_context(config),
        "terminationGracePeriodSeconds": 30,
    }
    if init_containers:
        spec["initContainers"] = init_containers
    spec["containers"] = [container]
    spec["volumes"] = volumes
    spec.update(podspec.scheduling(workload.resources, labels, config))
    return spec


def build_revision(
    workload: WorkloadSpec,
    config: KubernetesConfig,
    *,
    endpoint_labels: Mapping[str, str] | None = None,
) -> RevisionObjects:
    """Deployment + Service + PDB of one revision. ``endpoint_labels`` selects the accelerator node pool.

    Raises ``ManifestError`` (naming ``spec.model.uri``) when a ``uri`` model cannot be fetched on a cluster.
    """
    owner = workload.owner
    name = revision_name(owner.name, workload.revision)
    labels = revision_labels(workload)
    selector = selector_labels(workload)
    owners = owner_references(owner.kind, owner.name, owner.uid)
    pod_spec = _pod_spec(workload, endpoint_labels or {}, config)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, owner.namespace, labels, owners),
        "spec": {
            "replicas": workload.replicas,
            "revisionHistoryLimit": 2,
            "progressDeadlineSeconds": config.startup_timeout_seconds + 300,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, owner.namespace, labels, owners),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": SERVICE_PORT,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                    "appProtocol": "http",
                }
            ],
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(name, owner.namespace, labels, owners),
        # maxUnavailable (not minAvailable) stays right whatever the autoscaler sets, and never blocks a
        # node drain outright when a revision has a single replica.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
    return RevisionObjects(deployment, service, pdb)


def build_endpoint(endpoint: ModelEndpoint, config: KubernetesConfig) -> RevisionObjects:
    """The objects of an endpoint's current revision, as ``render`` shows them."""
    return build_revision(workload_for(endpoint), config, endpoint_labels=endpoint.metadata.labels)
