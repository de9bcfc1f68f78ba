"""One of our resources -> the native objects the operator would create for it, as ``render`` shows them."""

from __future__ import annotations

from typing import Any

from pilothouse.api.job import Job
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import Resource
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.builders.endpoint import build_endpoint
from pilothouse.runtime.kubernetes.builders.job import build_job
from pilothouse.runtime.kubernetes.builders.team import build_team


def render(resource: Resource, config: KubernetesConfig) -> list[dict[str, Any]]:
    """Raises ``ManifestError`` (without a source; the caller knows the file) if it cannot run on a cluster."""
    if isinstance(resource, ModelEndpoint):
        return build_endpoint(resource, config).all()
    if isinstance(resource, Job):
        return [build_job(resource, config)]
    return build_team(resource, config)
