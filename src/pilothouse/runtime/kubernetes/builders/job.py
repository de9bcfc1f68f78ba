"""A Pilothouse ``Job`` as a suspended ``batch/v1`` Job that our queue admits by unsuspending it.

This is Kueue's pattern: the Job object exists from the start (so ``kubectl`` shows it and quota
accounting can see it) but creates no pods while ``suspend: true``. Admission is one merge patch
(:func:`unsuspend_patch`); preemption is the reverse (:func:`suspend_patch`), which makes the Job
controller delete the running pods, each getting ``terminationGracePeriodSeconds`` =
``preemptionGracePeriodSeconds`` to checkpoint.

Workers are a gang: ``parallelism = completions = workers`` with ``completionMode: Indexed``, so each
worker knows its rank (``JOB_COMPLETION_INDEX``) and the world size (``PILOTHOUSE_WORKERS``). Preemptions
and node drains do not count as failures: the pod failure policy ignores pods whose ``DisruptionTarget``
condition is set, so only real failures consume ``backoffLimit`` (= ``maxRetries``).
"""

from __future__ import annotations

from typing import Any

from pilothouse.api.job import Job
from pilothouse.runtime.kubernetes.builders import podspec
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.builders.names import (
    JOB_LABEL,
    PRIORITY_LABEL,
    TEAM_LABEL,
    job_name,
    metadata,
    owner_references,
    standard_labels,
)

WORKER = "worker"


def job_labels(job: Job) -> dict[str, str]:
    labels = standard_labels(name="pilothouse-job", instance=job.metadata.name, component=WORKER)
    labels[JOB_LABEL] = job.metadata.name
    labels[TEAM_LABEL] = job.metadata.namespace
    labels[PRIORITY_LABEL] = job.spec.priorityClassName
    return labels


def _container(job: Job, config: KubernetesConfig) -> dict[str, Any]:
    spec = job.spec
    volumes_mounts = podspec.scratch_volumes(spec.resources)[1]
    env = [
        *podspec.base_env(),
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "PILOTHOUSE_JOB_NAME", "value": job.metadata.name},
        {"name": "PILOTHOUSE_WORKERS", "value": str(spec.workers)},
        *({"name": k, "value": v} for k, v in sorted(spec.env.items())),
    ]
    container: dict[str, Any] = {"name": WORKER}
    if spec.image is not None:
        container["image"] = spec.image
    else:
        container["image"] = config.job_base_image
        container["command"] = list(spec.command or [])
    if spec.workingDir:
        container["workingDir"] = spec.workingDir
    container.update(
        {
            "env": env,
            "resources": podspec.container_resources(spec.resources),
            "securityContext": podspec.container_security_context(),
            "volumeMounts": volumes_mounts,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    )
    return container


def build_job(job: Job, config: KubernetesConfig) -> dict[str, Any]:
    """The suspended ``batch/v1`` Job for one of our Jobs (owned by it when its uid is known)."""
    spec = job.spec
    meta = job.metadata
    labels = job_labels(job)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",  # required by podFailurePolicy; retries are new pods, counted
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": podspec.pod_security_context(config),
        "terminationGracePeriodSeconds": spec.preemptionGracePeriodSeconds,
        "containers": [_container(job, config)],
        "volumes": podspec.scratch_volumes(spec.resources)[0],
    }
    pod_spec.update(podspec.scheduling(spec.resources, meta.labels, config))
    batch: dict[str, Any] = {
        "suspend": True,
        "parallelism": spec.workers,
        "completions": spec.workers,
        "completionMode": "Indexed",
        "backoffLimit": spec.maxRetries,
        "podFailurePolicy": {
            "rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
            ]
        },
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if spec.activeDeadlineSeconds is not None:
        batch["activeDeadlineSeconds"] = spec.activeDeadlineSeconds
    owners = owner_references(job.kind, meta.name, meta.uid)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(job_name(meta.name, spec.workers), meta.namespace, labels, owners),
        "spec": batch,
    }


def unsuspend_patch() -> dict[str, Any]:
    """The merge patch that admits a built Job: its pods are created from now on."""
    return {"spec": {"suspend": False}}


def suspend_patch() -> dict[str, Any]:
    """The merge patch that preempts an admitted Job: its running pods get their grace period and go."""
    return {"spec": {"suspend": True}}
