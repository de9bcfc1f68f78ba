"""Resource kinds as pydantic models: the one source of truth for what a manifest may say.

This layer does no I/O. Everything above it (store, controllers, server, CLI) speaks these types.
"""

from pilothouse.api.errors import FieldProblem, ManifestError
from pilothouse.api.meta import API_VERSION, GROUP, VERSION, Condition, ObjectMeta
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import KINDS, KindInfo, Resource, parse_manifest, resolve_kind

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "Condition",
    "FieldProblem",
    "KindInfo",
    "ManifestError",
    "ModelEndpoint",
    "ObjectMeta",
    "Resource",
    "parse_manifest",
    "resolve_kind",
]
