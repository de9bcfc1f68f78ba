"""Admission the way the apiserver does it: 422 ``Invalid`` with one cause per bad field.

- Names and labels: the apiserver's own grammars (DNS-1123 subdomain or label, label key/value rules).
- Built-in kinds: the official OpenAPI schemas of one pinned Kubernetes minor from
  ``kubernetes-validate`` (its strict variant, compiled once per kind) (a typo such as ``replicaz`` is an error), plus the one semantic
  rule our manifests can break that the schemas cannot express: a Deployment's selector must match its
  pod template labels.
- Custom resources: the served CRD version's ``openAPIV3Schema``, as the apiserver applies it: defaults
  are filled in, unknown fields are pruned (or refused with ``fieldValidation=Strict``, which kubectl
  sends), the rest is checked with ``openapi-schema-validator`` (OAS 3.0 has ``nullable``), and
  ``x-kubernetes-validations`` CEL rules run through ``cel-python``. Rules using functions cel-python
  lacks (Kubernetes' ``quantity()``, ``isURL()``...) and transition rules (``oldSelf``) are skipped.

kmock stores whatever JSON it is given; this module is entirely ours.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from typing import Any

import celpy
from jsonschema import Draft202012Validator
from kubernetes_validate import utils as kv_utils
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource

from .discovery import K8S_MAJOR, K8S_MINOR, ResourceType

Cause = dict[str, str]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_NAMED = frozenset({("", "namespaces"), ("", "services")})


def _cause(path: str, message: str, reason: str = "FieldValueInvalid") -> Cause:
    return {"reason": reason, "message": message, "field": path}


def check_name(rt: ResourceType, name: str) -> list[Cause]:
    if (rt.group, rt.plural) in _LABEL_NAMED:
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            return [
                _cause(
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                    "alphanumeric characters or '-', and must start and end with an alphanumeric character",
                )
            ]
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return [
            _cause(
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            )
        ]
    return []


def check_labels(labels: Any) -> list[Cause]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [_cause("metadata.labels", "must be a map of strings", "FieldValueTypeInvalid")]
    causes: list[Cause] = []
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if (
            (prefix and not _DNS1123_SUBDOMAIN.match(prefix))
            or not name
            or len(name) > 63
            or not _LABEL_NAME.match(name)
        ):
            causes.append(
                _cause("metadata.labels", f'Invalid value: "{key}": name part must be a valid label key')
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_NAME.match(value):
            causes.append(
                _cause(
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label must be an '
                    "empty string or consist of alphanumeric characters, '-', '_' or '.'",
                )
            )
    return causes


@functools.cache
def _builtin_validator(api_version: str, kind: str) -> Any:
    """The strict schema of one built-in kind, compiled once (``kubernetes_validate.validate`` re-reads
    and re-parses the multi-megabyte definitions file on every call, ~50 ms). Same files, same layout."""
    wanted = f"{K8S_MAJOR}.{K8S_MINOR}"
    version = [v for v in kv_utils.all_versions() if kv_utils.major_minor(v) <= wanted][-1]
    schema_dir = f"kubernetes-json-schema/v{version}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", wanted)
    except FileNotFoundError:
        return None
    definitions = _definitions(schema_dir, wanted)
    registry = Resource.from_contents(schema) @ (definitions @ Registry())
    return Draft202012Validator(schema, registry=registry)


@functools.cache
def _definitions(schema_dir: str, wanted: str) -> Any:
    return Resource.from_contents(kv_utils.schema_contents(f"{schema_dir}/_definitions.json", wanted))


def check_builtin(obj: dict[str, Any]) -> list[Cause]:
    """Strict validation with kubernetes-validate's schemas; every error becomes a cause."""
    validator = _builtin_validator(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if validator is None:
        return []
    causes = [
        _cause(".".join(str(p) for p in err.absolute_path), err.message) for err in validator.iter_errors(obj)
    ]
    if causes:
        return causes
    if obj.get("kind") == "Deployment":
        spec = obj.get("spec") or {}
        wanted = ((spec.get("selector") or {}).get("matchLabels")) or {}
        labels = (((spec.get("template") or {}).get("metadata") or {}).get("labels")) or {}
        if any(labels.get(k) != v for k, v in wanted.items()):
            return [
                _cause(
                    "spec.template.metadata.labels",
                    "Invalid value: `selector` does not match template `labels`",
                )
            ]
    return []


# -- custom resources -------------------------------------------------------------------------------


def _to_oas30(schema: Any) -> Any:
    """Rewrite the Kubernetes extensions a plain OAS 3.0 validator does not know."""
    if isinstance(schema, list):
        return [_to_oas30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _to_oas30(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


@dataclass
class CRSchema:
    """One CRD version's schema, compiled once when the CRD is created."""

    schema: dict[str, Any]
    validator: Any = field(init=False)

    def __post_init__(self) -> None:
        self.validator = OAS30Validator(_to_oas30(self.schema))

    def admit(
        self, obj: dict[str, Any], *, strict_fields: bool
    ) -> tuple[dict[str, Any], list[Cause], list[str]]:
        """(defaulted and pruned object, causes for 422, unknown field paths pruned)."""
        out = copy.deepcopy(obj)
        _default(self.schema, out)
        unknown: list[str] = []
        for key in list(out):
            if key in {"apiVersion", "kind", "metadata"}:
                continue
            props = self.schema.get("properties") or {}
            if key not in props and not self.schema.get("x-kubernetes-preserve-unknown-fields"):
                unknown.append(key)
                del out[key]
            elif key in props:
                out[key] = _prune(props[key], out[key], key, unknown)
        causes: list[Cause] = []
        if unknown and strict_fields:
            causes.extend(_cause(p, f'unknown field "{p}"', "FieldValueInvalid") for p in unknown)
        body = {k: v for k, v in out.items() if k not in {"apiVersion", "kind", "metadata"}}
        for err in self.validator.iter_errors(body):
            path = ".".join(str(p) for p in err.absolute_path)
            causes.append(_cause(path, err.message))
        if not causes:
            causes.extend(_cel(self.schema, body, ""))
        return out, causes, unknown


def _default(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for item in value.values():
                _default(extra, item)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(schema["items"], item)


def _prune(schema: dict[str, Any], value: Any, path: str, unknown: list[str]) -> Any:
    """Drop fields the schema does not declare (unless ``x-kubernetes-preserve-unknown-fields``)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or extra is True
        out = {}
        for key, item in value.items():
            sub = f"{path}.{key}"
            if key in props:
                out[key] = _prune(props[key], item, sub, unknown)
            elif isinstance(extra, dict):
                out[key] = _prune(extra, item, sub, unknown)
            elif preserve:
                out[key] = item
            else:
                unknown.append(sub)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(schema["items"], item, f"{path}[{n}]", unknown) for n, item in enumerate(value)]
    return value


def _cel(schema: dict[str, Any], value: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        text = rule.get("rule", "")
        if "oldSelf" in text:
            continue
        try:
            env = celpy.Environment()
            program = env.program(env.compile(text))
            result = program.evaluate({"self": celpy.json_to_cel(value)})
        except Exception:  # a function cel-python lacks: the rule is not checked here
            continue
        if result is False or (isinstance(result, celpy.celtypes.BoolType) and not bool(result)):
            causes.append(_cause(path, rule.get("message") or f"failed rule: {text}"))
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                causes.extend(_cel(sub, value[key], f"{path}.{key}" if path else key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value):
            causes.extend(_cel(schema["items"], item, f"{path}[{n}]"))
    return causes
