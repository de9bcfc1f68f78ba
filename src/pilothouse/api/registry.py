"""The kinds the platform knows, how users may name them, and how a raw document becomes a typed object.

One table drives the CLI (``get me``), the REST paths (``/modelendpoints``), the store and, later, the CRD
export, so adding a kind is one entry here plus its model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pilothouse.api.errors import FieldProblem, ManifestError, problems_from_validation_error
from pilothouse.api.job import Job
from pilothouse.api.meta import API_VERSION
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.team import Team

Resource = ModelEndpoint | Job | Team
"""Every stored kind."""


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    model: type[ModelEndpoint] | type[Job] | type[Team]
    namespaced: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return (self.kind.lower(), self.plural, self.singular, *self.short_names)


KINDS: dict[str, KindInfo] = {
    "ModelEndpoint": KindInfo(
        kind="ModelEndpoint",
        plural="modelendpoints",
        singular="modelendpoint",
        short_names=("me",),
        model=ModelEndpoint,
    ),
    "Job": KindInfo(kind="Job", plural="jobs", singular="job", short_names=(), model=Job),
    "Team": KindInfo(
        kind="Team", plural="teams", singular="team", short_names=(), model=Team, namespaced=False
    ),
}


def resolve_kind(name: str) -> KindInfo:
    """Find a kind by its name, plural, singular or short name (case-insensitive), as kubectl does."""
    wanted = name.lower().split(".", 1)[0]
    for info in KINDS.values():
        if wanted in info.names:
            return info
    known = ", ".join(sorted(n for info in KINDS.values() for n in (info.plural, *info.short_names)))
    raise ManifestError([FieldProblem("kind", f"unknown kind {name!r} (known: {known})")])


def by_plural(plural: str) -> KindInfo:
    for info in KINDS.values():
        if info.plural == plural:
            return info
    raise KeyError(plural)


def parse_manifest(doc: Any, source: str | None = None) -> Resource:
    """Validate one decoded document into a typed resource; errors name the field path and the source."""
    if not isinstance(doc, Mapping):
        raise ManifestError(
            [FieldProblem("", f"a manifest must be a mapping, got {type(doc).__name__}")], source
        )
    api_version = doc.get("apiVersion")
    if api_version != API_VERSION:
        message = (
            "required field is missing" if api_version is None else f"unknown apiVersion {api_version!r}"
        )
        raise ManifestError([FieldProblem("apiVersion", f"{message} (expected {API_VERSION})")], source)
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        message = "required field is missing" if kind is None else f"unknown kind {kind!r}"
        raise ManifestError([FieldProblem("kind", f"{message} (known: {', '.join(KINDS)})")], source)
    try:
        return KINDS[kind].model.model_validate(dict(doc))
    except ValidationError as exc:
        raise ManifestError(problems_from_validation_error(exc), source) from exc


def to_document(obj: Resource) -> dict[str, Any]:
    """The JSON-ready form of an object, as served by the API and printed by ``-o yaml``."""
    return obj.model_dump(mode="json", exclude_none=True)
