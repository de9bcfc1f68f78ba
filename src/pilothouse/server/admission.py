"""Admission: everything checked before an object is stored, so nothing invalid is ever half-stored.

Schema validation happened when the body was parsed; here the runtime adds what only it can know (the
local runtime cannot run container images; a model file must exist), and the path and body must agree
on kind, namespace and name.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api.errors import FieldProblem, ManifestError
from pilothouse.api.job import Job
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import KindInfo, Resource, parse_manifest
from pilothouse.runtime.protocol import Runtime


def admit(body: Any, info: KindInfo, namespace: str, runtime: Runtime, name: str | None = None) -> Resource:
    """Parse and check a request body for ``info``'s collection in ``namespace``; raise ``ManifestError``."""
    if isinstance(body, dict) and info.namespaced:
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and "namespace" not in metadata:
            body = {**body, "metadata": {**metadata, "namespace": namespace}}
    obj = parse_manifest(body)
    problems: list[FieldProblem] = []
    if obj.kind != info.kind:
        problems.append(FieldProblem("kind", f"{obj.kind} cannot be stored under {info.plural}"))
    if obj.metadata.namespace != namespace:
        problems.append(
            FieldProblem(
                "metadata.namespace", f"{obj.metadata.namespace!r} does not match the path's {namespace!r}"
            )
        )
    if name is not None and obj.metadata.name != name:
        problems.append(
            FieldProblem("metadata.name", f"{obj.metadata.name!r} does not match the path's {name!r}")
        )
    if isinstance(obj, ModelEndpoint):
        problems.extend(runtime.admit(obj))
    elif isinstance(obj, Job) and obj.spec.image is not None and not runtime.runs_images:
        problems.append(
            FieldProblem("spec.image", f"the {runtime.name} runtime cannot run container images; use command")
        )
    if problems:
        raise ManifestError(problems)
    return obj


# -- cost: budgets that refuse endpoints (called by pilothouse.server.cost.budget_admission) --------------


def replica_bounds(endpoint: ModelEndpoint) -> tuple[int, int]:
    """The most replicas the endpoint may be asked to keep (min) and to reach (max), schedules included."""
    scaling = endpoint.spec.autoscaling
    mins = [scaling.minReplicas, *(s.minReplicas for s in scaling.schedules if s.minReplicas is not None)]
    maxes = [
        scaling.maxReplicas or 1,
        *(s.maxReplicas for s in scaling.schedules if s.maxReplicas is not None),
    ]
    return max(mins), max(maxes)


def budget_problems(
    endpoint: ModelEndpoint, stored: ModelEndpoint | None, refusal: str | None
) -> list[FieldProblem]:
    """Why a budget refuses this write: a new endpoint, or raised replica bounds (a scale-up), while the
    team's budget refuses endpoints (``refusal`` is the budget's reason; None: it does not)."""
    if refusal is None:
        return []
    if stored is None:
        return [FieldProblem("metadata.namespace", f"new endpoints are refused: {refusal}")]
    (old_min, old_max), (new_min, new_max) = replica_bounds(stored), replica_bounds(endpoint)
    if new_min > old_min or new_max > old_max:
        return [
            FieldProblem(
                "spec.autoscaling",
                f"raising replicas ({old_min}-{old_max} -> {new_min}-{new_max}) is refused: {refusal}",
            )
        ]
    return []
