"""Pure manifest builders: ``ModelEndpoint``/``Job``/``Team`` in, ``dict`` Kubernetes objects out.

Each module builds one family of objects; none does I/O, so the same functions serve the operator,
``pilothouse render`` (offline, like ``helm template``) and the schema tests.
"""

from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.builders.endpoint import RevisionObjects, build_revision, workload_for
from pilothouse.runtime.kubernetes.builders.gateway import gateway_objects
from pilothouse.runtime.kubernetes.builders.install import install_objects
from pilothouse.runtime.kubernetes.builders.job import build_job, suspend_patch, unsuspend_patch
from pilothouse.runtime.kubernetes.builders.render import render
from pilothouse.runtime.kubernetes.builders.team import build_team

__all__ = [
    "KubernetesConfig",
    "RevisionObjects",
    "build_job",
    "build_revision",
    "build_team",
    "gateway_objects",
    "install_objects",
    "render",
    "suspend_patch",
    "unsuspend_patch",
    "workload_for",
]
