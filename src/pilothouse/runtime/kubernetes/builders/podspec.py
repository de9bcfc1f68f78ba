"""Pod-level policy shared by model servers, jobs, the gateway and the operator.

Every pod we create meets the ``restricted`` Pod Security Standard (team namespaces are labelled to
enforce it), asks for exactly what the manifest says, and lands on GPU nodes only when it asks for GPUs:
GPU nodes are commonly tainted ``nvidia.com/gpu:NoSchedule`` (GKE, AKS, the NVIDIA GPU Operator docs), so a
GPU pod tolerates that taint and a CPU pod does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pilothouse.api.modelendpoint import Resources
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig

TMP_VOLUME = "tmp"
SHM_VOLUME = "dshm"


def pod_security_context(config: KubernetesConfig) -> dict[str, Any]:
    uid = config.run_as_user
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "privileged": False,
    }


def container_resources(resources: Resources) -> dict[str, Any]:
    """Requests for cpu, memory and accelerators; limits for memory and accelerators only.

    Extended resources (GPUs) must have limit == request. Memory gets limit == request so a replica is
    never OOM-killed for memory it was promised. CPU gets no limit: CFS throttling adds tail latency to a
    model server, and unused CPU on the node is better spent than idle.
    """
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if resources.cpu is not None:
        requests["cpu"] = str(resources.cpu)
    if resources.memory is not None:
        requests["memory"] = limits["memory"] = str(resources.memory)
    for name, count in sorted(resources.accelerators.items()):
        requests[name] = limits[name] = str(count)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def scheduling(resources: Resources, labels: Mapping[str, str], config: KubernetesConfig) -> dict[str, Any]:
    """``tolerations`` and ``nodeSelector`` for a pod: GPU taints tolerated only when GPUs are requested."""
    out: dict[str, Any] = {}
    if resources.accelerators:
        out["tolerations"] = [
            {"key": name, "operator": "Exists", "effect": "NoSchedule"}
            for name in sorted(resources.accelerators)
        ]
    accelerator = labels.get(config.accelerator_label)
    if accelerator:
        out["nodeSelector"] = {config.accelerator_label: accelerator}
    return out


def scratch_volumes(resources: Resources) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A writable ``/tmp`` (the root filesystem is read-only), and shared memory for GPU frameworks.

    PyTorch/NCCL use ``/dev/shm`` for inter-process communication; the container runtime's 64 MiB
    default breaks multi-GPU inference and data loaders, so GPU pods get a memory-backed volume there.
    """
    volumes: list[dict[str, Any]] = [{"name": TMP_VOLUME, "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": TMP_VOLUME, "mountPath": "/tmp"}]  # noqa: S108 - a volume mount
    if resources.accelerators:
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})  # noqa: S108 - a volume mount
    return volumes, mounts


def base_env() -> list[dict[str, str]]:
    """``HOME`` on the writable volume: libraries cache there (Hugging Face, matplotlib, pip)."""
    return [{"name": "HOME", "value": "/tmp"}]  # noqa: S108 - /tmp is the emptyDir
