"""CustomResourceDefinitions generated from the pydantic models, so the cluster and the embedded store
accept the same manifests.

The models stay the one source of truth; this module only translates their JSON Schema into the
*structural* OpenAPI v3 subset the Kubernetes API server demands (``apiextensions.k8s.io/v1``):

- ``$ref``/``$defs`` are inlined (structural schemas forbid references);
- ``anyOf: [X, null]`` becomes ``X`` + ``nullable: true``; titles are dropped, ``additionalProperties:
  false`` is dropped (the API server prunes unknown fields, or rejects them under ``kubectl``'s default
  strict field validation);
- every :data:`~pilothouse.api.quantity.Quantity` becomes ``x-kubernetes-int-or-string`` with the
  quantity pattern, like ``resource.Quantity`` in built-in kinds;
- cross-field rules that pydantic checks in Python validators are restated as CEL
  ``x-kubernetes-validations`` (:data:`_RULES`) or plain keywords (:data:`_EXTRAS`).

Short forms need care. ``spec.model`` may be an image string or an object, and
``resources.accelerators`` may be a map, a ``"nvidia.com/gpu: 2"`` string or a bare count. A structural
schema cannot say "string or object": ``type`` is forbidden inside ``anyOf``/``oneOf`` (only the
``integer``/``string`` pair of ``x-kubernetes-int-or-string`` is allowed), and CEL rules cannot be
attached to (or see into) a node without a type. So exactly these two nodes are untyped with
``x-kubernetes-preserve-unknown-fields: true`` (:data:`_SHORT_FORMS`), and ``spec.model`` keeps an
admission-time "exactly one of uri, image, command" check written in type-free junctors, which *are*
structural: ``required`` and ``maxProperties`` only constrain objects, so the string form passes the
last branch, which no object can satisfy. The operator re-validates every object with the same
pydantic models and normalises short forms, so nothing unchecked reaches a workload.

Pure: no I/O, no Kubernetes client, no YAML. The checked-in files under ``deploy/kubernetes/crds/`` are
written by ``python -m pilothouse.runtime.kubernetes.bundle deploy/kubernetes``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BeforeValidator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from pilothouse.api.meta import GROUP, VERSION
from pilothouse.api.quantity import Quantity
from pilothouse.api.registry import KINDS, KindInfo

CATEGORIES = ["pilothouse", "all"]

QUANTITY_PATTERN = r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
"""The API server's quantity grammar without a minus sign (our quantities must not be negative)."""

ACCELERATORS_PATTERN = r"^\s*\{?\s*(\d+|[a-z0-9.-]+/[a-z0-9._-]+\s*:\s*\d+(\s*,\s*[a-z0-9.-]+/[a-z0-9._-]+\s*:\s*\d+)*)\s*\}?\s*$"
"""The string short form of ``accelerators``: a bare count or ``name: count[, name: count]``."""

_QUANTITY_MARK = "x-pilothouse-quantity"
_QUANTITY_VALIDATOR = next(m.func for m in get_args(Quantity)[1:] if isinstance(m, BeforeValidator))

_DROP = {"title", "additionalProperties", "$defs", "const"}
_KEEP = (
    "description",
    "format",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "default",
)

_MODEL_SOURCE_SHORT_FORM: dict[str, Any] = {
    "description": (
        "The model to serve: a container image reference (short form, e.g. registry.example.com/llm:1.2) "
        "or an object with exactly one of uri (+ format), image or command. Untyped in this schema "
        "because a structural schema cannot express 'string or object'; the operator validates the "
        "object form field by field."
    ),
    "x-kubernetes-preserve-unknown-fields": True,
    "anyOf": [
        {"required": ["uri"], "not": {"anyOf": [{"required": ["image"]}, {"required": ["command"]}]}},
        {"required": ["image"], "not": {"anyOf": [{"required": ["uri"]}, {"required": ["command"]}]}},
        {"required": ["command"], "not": {"anyOf": [{"required": ["uri"]}, {"required": ["image"]}]}},
        # Satisfiable by no object (three required fields, at most zero properties): only the string form.
        {"required": ["uri", "image", "command"], "maxProperties": 0},
    ],
}

_ACCELERATORS_SHORT_FORM: dict[str, Any] = {
    "description": (
        "Accelerators per replica/worker: a map like {nvidia.com/gpu: 2}, the string 'nvidia.com/gpu: 2' "
        "or a bare GPU count. Untyped in this schema because a structural schema cannot express "
        "'map, string or integer'; the string form is checked by pattern, the operator checks the rest."
    ),
    "x-kubernetes-preserve-unknown-fields": True,
    "pattern": ACCELERATORS_PATTERN,
    "minimum": 0,
}

_SHORT_FORMS: dict[tuple[str, str], dict[str, Any]] = {
    ("ModelEndpointSpec", "model"): _MODEL_SOURCE_SHORT_FORM,
    ("Resources", "accelerators"): _ACCELERATORS_SHORT_FORM,
}
"""(model title, field) -> the schema that replaces the generated one, because the field has short forms."""

_DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

_EXTRAS: dict[tuple[str, str], dict[str, Any]] = {
    ("JobSpec", "priorityClassName"): {"enum": ["low", "normal", "high"]},
    ("JobSpec", "command"): {"minItems": 1, "items": {"minLength": 1}},
    ("JobSpec", "image"): {"pattern": r"^\S+$"},
    ("TeamSpec", "priorityClasses"): {"items": {"enum": ["low", "normal", "high"]}},
    ("TeamSpec", "cohort"): {"pattern": _DNS1123_LABEL, "maxLength": 63},
}
"""(model title, field) -> keywords merged into the generated schema: rules pydantic checks in code."""

_RULES: dict[str, list[dict[str, str]]] = {
    "Autoscaling": [
        {
            "rule": "!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
            "message": "minReplicas must be <= maxReplicas",
        }
    ],
    "JobSpec": [
        {
            "rule": "has(self.command) != has(self.image)",
            "message": "exactly one of command or image must be set",
        }
    ],
    "TeamSpec": [
        {
            "rule": "!has(self.quotas) || self.quotas.all(k, k == 'cpu' || k == 'memory' || k.contains('/'))",
            "message": "quotas: resource names are cpu, memory or a vendor resource such as nvidia.com/gpu",
        }
    ],
}
"""Model title -> CEL rules on that object's node: the cross-field checks of its pydantic validators."""

_PRINTER_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "ModelEndpoint": [
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "URL", "type": "string", "jsonPath": ".status.url"},
    ],
    "Job": [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Workers", "type": "integer", "jsonPath": ".spec.workers"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
        {"name": "Position", "type": "integer", "jsonPath": ".status.queuePosition", "priority": 1},
    ],
    "Team": [
        {"name": "Cohort", "type": "string", "jsonPath": ".spec.cohort"},
    ],
}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


class UnsupportedSchema(ValueError):
    """A model uses a JSON Schema construct this generator cannot make structural."""


class _CrdJsonSchema(GenerateJsonSchema):
    """pydantic's generator, marking :data:`Quantity` fields (a before-validator on ``str``)."""

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> JsonSchemaValue:
        if schema["function"].get("function") is _QUANTITY_VALIDATOR:
            return {"type": "string", _QUANTITY_MARK: True}
        return super().function_before_schema(schema)


class _Converter:
    """Turns one model's JSON Schema into a structural schema; remembers which overrides it used."""

    def __init__(self, defs: Mapping[str, Any]) -> None:
        self.defs = defs
        self.used: set[tuple[str, str] | str] = set()

    def node(self, schema: Mapping[str, Any], path: str) -> dict[str, Any]:
        if "$ref" in schema:
            target = self.defs[schema["$ref"].rsplit("/", 1)[-1]]
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return self.node(merged, path)
        if "anyOf" in schema:
            return self._union(schema, path)
        if schema.get(_QUANTITY_MARK):
            return self._quantity(schema)
        out: dict[str, Any] = {}
        kind = schema.get("type")
        if kind is not None:
            out["type"] = kind
        for key in _KEEP:
            if key in schema and not (key == "default" and schema[key] is None):
                out[key] = copy.deepcopy(schema[key])
        if "const" in schema:
            out["enum"] = [schema["const"]]
        if "exclusiveMinimum" in schema:  # JSON Schema 2020 number -> OpenAPI 3.0 boolean
            out["minimum"], out["exclusiveMinimum"] = schema["exclusiveMinimum"], True
        if "exclusiveMaximum" in schema:
            out["maximum"], out["exclusiveMaximum"] = schema["exclusiveMaximum"], True
        if kind == "object":
            self._object(schema, out, path)
        elif kind == "array":
            out["items"] = self.node(schema.get("items", {}), f"{path}[]")
        unknown = set(schema) - set(_KEEP) - _DROP - {"type", "properties", "required", "items"}
        unknown -= {"exclusiveMinimum", "exclusiveMaximum", "anyOf", "$ref", _QUANTITY_MARK}
        if unknown:
            raise UnsupportedSchema(f"{path}: cannot translate {sorted(unknown)} to a structural schema")
        return out

    def _union(self, schema: Mapping[str, Any], path: str) -> dict[str, Any]:
        options = [o for o in schema["anyOf"] if o != {"type": "null"}]
        if len(options) != 1:
            raise UnsupportedSchema(f"{path}: unions other than 'X or null' are not structural")
        siblings = {k: v for k, v in schema.items() if k != "anyOf"}
        out = self.node({**options[0], **siblings}, path)
        if len(options) < len(schema["anyOf"]):
            out["nullable"] = True
        return out

    @staticmethod
    def _quantity(schema: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "description" in schema:
            out["description"] = schema["description"]
        if schema.get("default") is not None:
            out["default"] = schema["default"]
        out.update(
            {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "x-kubernetes-int-or-string": True,
                "pattern": QUANTITY_PATTERN,
                "minimum": 0,
            }
        )
        return out

    def _object(self, schema: Mapping[str, Any], out: dict[str, Any], path: str) -> None:
        title = str(schema.get("title", ""))
        properties: dict[str, Any] = {}
        for name, prop in schema.get("properties", {}).items():
            key = (title, name)
            if key in _SHORT_FORMS:
                self.used.add(key)
                short = copy.deepcopy(_SHORT_FORMS[key])
                properties[name] = short
                continue
            converted = self.node(prop, f"{path}.{name}")
            if key in _EXTRAS:
                self.used.add(key)
                _merge(converted, _EXTRAS[key])
            properties[name] = converted
        if properties:
            out["properties"] = properties
        if schema.get("required"):
            out["required"] = list(schema["required"])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and not properties:
            out["additionalProperties"] = self.node(extra, f"{path}.*")
        if title in _RULES:
            self.used.add(title)
            out["x-kubernetes-validations"] = copy.deepcopy(_RULES[title])


def _merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _conditions_as_map_list(schema: dict[str, Any]) -> None:
    """Conditions are keyed by ``type`` (as in ``metav1.Condition``), so server-side apply merges them."""
    status = schema["properties"].get("status", {})
    conditions = status.get("properties", {}).get("conditions")
    if conditions is not None:
        conditions["x-kubernetes-list-type"] = "map"
        conditions["x-kubernetes-list-map-keys"] = ["type"]


def openapi_schema(info: KindInfo) -> tuple[dict[str, Any], set[tuple[str, str] | str]]:
    """The structural ``openAPIV3Schema`` of one kind, and the override keys it used."""
    generated = info.model.model_json_schema(schema_generator=_CrdJsonSchema)
    converter = _Converter(generated.get("$defs", {}))
    properties: dict[str, Any] = {
        "apiVersion": {
            "type": "string",
            "description": "APIVersion of this object: pilothouse.dev/v1alpha1.",
        },
        "kind": {"type": "string", "description": f"Kind of this object: {info.kind}."},
        "metadata": {"type": "object"},
    }
    for name in ("spec", "status"):
        if name in generated["properties"]:
            properties[name] = converter.node(generated["properties"][name], name)
    schema: dict[str, Any] = {
        "type": "object",
        "description": f"A Pilothouse {info.kind}. See https://pilothouse.dev/docs/kubernetes.",
        "properties": properties,
    }
    if "spec" in generated.get("required", []):
        schema["required"] = ["spec"]
    _conditions_as_map_list(schema)
    return schema, converter.used


def crd_name(info: KindInfo) -> str:
    return f"{info.plural}.{GROUP}"


def crd_for(info: KindInfo) -> dict[str, Any]:
    """The ``apiextensions.k8s.io/v1`` CustomResourceDefinition of one kind."""
    schema, _ = openapi_schema(info)
    names: dict[str, Any] = {
        "plural": info.plural,
        "singular": info.singular,
        "kind": info.kind,
        "listKind": f"{info.kind}List",
        "categories": list(CATEGORIES),
    }
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": crd_name(info),
            "labels": {
                "app.kubernetes.io/name": "pilothouse",
                "app.kubernetes.io/part-of": "pilothouse",
                "app.kubernetes.io/component": "crd",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "names": names,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [*copy.deepcopy(_PRINTER_COLUMNS[info.kind]), dict(_AGE)],
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    """Every kind's CRD, in registry order. Fails if an override table names a field that is gone."""
    used: set[tuple[str, str] | str] = set()
    for info in KINDS.values():
        used |= openapi_schema(info)[1]
    declared: set[tuple[str, str] | str] = {*_SHORT_FORMS, *_EXTRAS, *_RULES}
    if declared - used:
        raise UnsupportedSchema(
            f"overrides name fields that no model has: {sorted(map(str, declared - used))}"
        )
    return [crd_for(info) for info in KINDS.values()]
