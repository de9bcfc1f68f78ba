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
