"""Offline validators for the Kubernetes backend's generated objects, exposed as fixtures.

- ``k8s_valid``: objects against the official schemas of Kubernetes :data:`K8S_VERSION` with
  ``kubernetes_validate`` in strict mode (unknown fields fail), then :func:`check_go_rules`.
  ``kubernetes_validate`` only *warns* on its command line when it has no schema for a kind (the API
  raises ``SchemaNotFoundError``); here that is a failure, so a typo in ``apiVersion``/``kind`` cannot
  pass as "valid".
- ``check_go_rules``: what the API server checks in Go code and the schemas do not encode (selectors
  match templates, DNS names and lengths incl. generated suffixes, named ports, restricted security
  context, owner uids, extended resources' limit == request, ...).
- ``crd_validator``: a custom resource against our generated CRD, the way the API server admits it:
  structural defaults first, the OpenAPI schema (``openapi_schema_validator``, OpenAPI 3.0 semantics
  incl. ``nullable``), unknown fields rejected (``kubectl``'s default strict field validation), then each
  ``x-kubernetes-validations`` rule evaluated with ``celpy`` with ``self`` bound to its node.

These live in their own directory (with this conftest) so they share nothing with the API-emulator
fixtures one level up.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import celpy
import kubernetes_validate
import pytest
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from kubernetes_validate.utils import SchemaNotFoundError
from openapi_schema_validator import OAS30Validator

from pilothouse.api.crd import all_crds
from pilothouse.api.meta import validate_labels

K8S_VERSION = "1.33"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_WORKLOADS = {"Deployment", "Job"}


def validate_official(obj: Mapping[str, Any]) -> None:
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    try:
        version = kubernetes_validate.validate(dict(obj), K8S_VERSION, strict=True)
    except SchemaNotFoundError:
        pytest.fail(
            f"{name}: no Kubernetes {K8S_VERSION} schema for {obj.get('apiVersion')} {obj.get('kind')}"
        )
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{name}: {path}: {exc.message}")
    assert version == K8S_VERSION, f"{name}: validated against {version}, not {K8S_VERSION}"


def pod_template(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] in _WORKLOADS:
        template: dict[str, Any] = obj["spec"]["template"]
        return template
    return None


def _check_names(obj: Mapping[str, Any]) -> list[str]:
    problems = []
    meta = obj["metadata"]
    name = meta["name"]
    kind = obj["kind"]
    if kind == "Service" and not (len(name) <= 63 and _DNS1035_LABEL.match(name)):
        problems.append(f"Service name {name!r} is not a DNS-1035 label")
    elif kind == "Namespace" and not (len(name) <= 63 and _DNS1123_LABEL.match(name)):
        problems.append(f"Namespace name {name!r} is not a DNS-1123 label")
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        problems.append(f"name {name!r} is not a DNS-1123 subdomain")
    if kind == "Deployment" and len(name) > 63:
        problems.append(f"Deployment name {name!r}: over 63 characters, its pods' hostnames are truncated")
    if kind == "Job":
        if len(name) > 63:
            problems.append(f"Job name {name!r}: the job-name label value must be <= 63 characters")
        if obj["spec"].get("completionMode") == "Indexed":
            hostname = f"{name}-{(obj['spec'].get('completions') or 1) - 1}"
            if not (len(hostname) <= 63 and _DNS1123_LABEL.match(hostname)):
                problems.append(f"Indexed Job pod hostname {hostname!r} is not a DNS label")
    for labels in (meta.get("labels", {}), (pod_template(obj) or {}).get("metadata", {}).get("labels", {})):
        try:
            validate_labels(labels)
        except ValueError as exc:
            problems.append(str(exc))
    for owner in meta.get("ownerReferences", []):
        if not owner.get("uid"):
            problems.append(f"ownerReference to {owner.get('kind')}/{owner.get('name')} has no uid")
    return problems


def _check_container(c: Mapping[str, Any], volumes: list[str]) -> list[str]:
    problems = []
    where = f"container {c['name']}"
    sc = c.get("securityContext", {})
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation is not false")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append(f"{where}: capabilities do not drop ALL")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: readOnlyRootFilesystem is not true")
    ports = {p.get("name") for p in c.get("ports", [])}
    for port in c.get("ports", []):
        if not port.get("name") or len(port["name"]) > 15 or not _PORT_NAME.match(port["name"]):
            problems.append(f"{where}: port {port} has no valid name")
    for key in ("startupProbe", "readinessProbe", "livenessProbe"):
        handler = (c.get(key) or {}).get("httpGet") or (c.get(key) or {}).get("tcpSocket") or {}
        if isinstance(handler.get("port"), str) and handler["port"] not in ports:
            problems.append(f"{where}: {key} uses unknown port name {handler['port']!r}")
    for mount in c.get("volumeMounts", []):
        if mount["name"] not in volumes:
            problems.append(f"{where}: mounts undeclared volume {mount['name']!r}")
    env_names = [e["name"] for e in c.get("env", [])]
    if len(env_names) != len(set(env_names)) or not all(_ENV_NAME.match(n) for n in env_names):
        problems.append(f"{where}: env names {env_names} are invalid or repeated")
    resources = c.get("resources", {})
    for key, value in resources.get("requests", {}).items():
        if "/" in key and resources.get("limits", {}).get(key) != value:
            problems.append(f"{where}: extended resource {key} needs limit == request")
    return problems


def _check_pod(pod: Mapping[str, Any]) -> list[str]:
    problems = []
    spec = pod["spec"]
    pod_sc = spec.get("securityContext", {})
    if pod_sc.get("runAsNonRoot") is not True:
        problems.append("pod securityContext.runAsNonRoot is not true")
    if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    volumes = [v["name"] for v in spec.get("volumes", [])]
    if len(volumes) != len(set(volumes)):
        problems.append(f"duplicate volume names {volumes}")
    containers = [*spec.get("initContainers", []), *spec["containers"]]
    names = [c["name"] for c in containers]
    if len(names) != len(set(names)):
        problems.append(f"duplicate container names {names}")
    for container in containers:
        problems += _check_container(container, volumes)
    return problems


def check_go_rules(objects: list[dict[str, Any]]) -> list[str]:
    """Problems the API server (or a controller) would find that the OpenAPI schemas cannot."""
    problems: list[str] = []
    templates: list[tuple[str, Mapping[str, str]]] = []
    for obj in objects:
        problems += _check_names(obj)
        template = pod_template(obj)
        if template is not None:
            templates.append((obj["metadata"].get("namespace", ""), template["metadata"]["labels"]))
            problems += _check_pod(template)
        if obj["kind"] == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"]
            labels = obj["spec"]["template"]["metadata"]["labels"]
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                problems.append(
                    f"Deployment {obj['metadata']['name']}: selector does not match template labels"
                )
        if obj["kind"] == "Job":
            if obj["spec"].get("suspend") is not True:
                problems.append(f"Job {obj['metadata']['name']}: not created suspended")
            if (
                obj["spec"].get("podFailurePolicy")
                and obj["spec"]["template"]["spec"].get("restartPolicy") != "Never"
            ):
                problems.append(
                    f"Job {obj['metadata']['name']}: podFailurePolicy requires restartPolicy Never"
                )
    for obj in objects:
        if obj["kind"] == "Service":
            selector = obj["spec"].get("selector")
        elif obj["kind"] == "PodDisruptionBudget":
            selector = obj["spec"]["selector"]["matchLabels"]
        else:
            continue
        ns = obj["metadata"].get("namespace", "")
        if not any(t_ns == ns and all(t.get(k) == v for k, v in selector.items()) for t_ns, t in templates):
            problems.append(
                f"{obj['kind']} {obj['metadata']['name']}: selector {selector} selects no pod template"
            )
    return problems


@dataclass
class CrdProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _strict(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Reject unknown fields where the schema lists properties (kubectl's strict field validation)."""
    out = copy.deepcopy(dict(schema))

    def walk(node: dict[str, Any]) -> None:
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        for child in node.get("properties", {}).values():
            walk(child)
        for key in ("additionalProperties", "items"):
            if isinstance(node.get(key), dict):
                walk(node[key])

    walk(out)
    return out


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """Structural defaulting: fill missing properties that have a ``default``, recursively."""
    if isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                value[name] = apply_defaults(prop, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in list(value):
                value[key] = apply_defaults(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def walk_rules(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Every (path, rule, node value) to evaluate: a rule runs where its node has a (non-null) value."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule, value
    if isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if value.get(name) is not None:
                yield from walk_rules(prop, value[name], f"{path}.{name}" if path else name)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key, item in value.items():
                yield from walk_rules(extra, item, f"{path}[{key}]")
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            yield from walk_rules(schema["items"], item, f"{path}[{index}]")


class CrdValidator:
    def __init__(self) -> None:
        self.crds = {crd["spec"]["names"]["kind"]: crd for crd in all_crds()}
        self.env = celpy.Environment()
        self._programs: dict[str, Any] = {}

    def schema(self, kind: str) -> dict[str, Any]:
        schema: dict[str, Any] = self.crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        return schema

    def _program(self, rule: str) -> Any:
        if rule not in self._programs:
            self._programs[rule] = self.env.program(self.env.compile(rule))
        return self._programs[rule]

    def problems(self, doc: Mapping[str, Any]) -> list[CrdProblem]:
        kind = doc.get("kind")
        if doc.get("apiVersion") != "pilothouse.dev/v1alpha1" or kind not in self.crds:
            return [CrdProblem("kind", f"no CRD for {doc.get('apiVersion')} {kind}")]
        schema = self.schema(str(kind))
        value = apply_defaults(schema, copy.deepcopy(dict(doc)))
        errors = OAS30Validator(_strict(schema)).iter_errors(value)
        found = [
            CrdProblem(".".join(str(p) for p in e.absolute_path), e.message)
            for e in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
        ]
        if found:
            return found  # the API server evaluates CEL only on schema-valid objects
        for path, rule, node in walk_rules(schema, value, ""):
            result = self._program(rule["rule"]).evaluate({"self": json_to_cel(node)})
            if isinstance(result, CELEvalError):
                found.append(CrdProblem(path, f"rule {rule['rule']!r} failed to evaluate: {result}"))
            elif not bool(result):
                found.append(CrdProblem(path, rule.get("message") or f"failed rule: {rule['rule']}"))
        return found


@pytest.fixture(scope="session")
def crd_validator() -> CrdValidator:
    return CrdValidator()


@pytest.fixture(scope="session")
def k8s_valid() -> Callable[[list[dict[str, Any]]], None]:
    """Validate objects against the official schemas *and* the Go-side rules; fail listing every problem."""

    def check(objects: list[dict[str, Any]]) -> None:
        assert objects, "nothing to validate"
        for obj in objects:
            validate_official(obj)
        problems = check_go_rules(objects)
        assert not problems, "\n".join(problems)

    return check


@pytest.fixture(scope="session")
def go_rules() -> Callable[[list[dict[str, Any]]], list[str]]:
    return check_go_rules
