"""What the server serves: the resource catalog and the discovery documents clients read first.

Every client starts with discovery: kubectl maps ``get deploy`` to ``apps/v1 deployments`` through
``/api``, ``/api/v1``, ``/apis`` and ``/apis/<group>/<version>``; kopf finds a CRD's plural the same way.
The built-in catalog comes from kmock (its bundled snapshot of a K3s cluster's discovery); CRDs add and
remove entries at run time, when they are created and deleted, as on a real server. Two kmock bugs are
avoided by serving these documents here: the core group's ``groupVersion`` is ``v1`` (kmock says
``/v1``, which kubectl cannot map) and discovery of a group lists all of its versions in CRD order.
"""

from __future__ import annotations

import functools
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

import kmock

K8S_MAJOR, K8S_MINOR = "1", "33"


@dataclass(frozen=True)
class ResourceType:
    """One served resource (group, version, plural) and what the server knows about it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")
    custom: bool = False
    schema: dict[str, Any] | None = None
    """The CRD version's ``openAPIV3Schema`` (custom resources only)."""
    printer_columns: tuple[dict[str, Any], ...] = ()
    field_selectors: tuple[str, ...] = ()
    """Fields this resource may be filtered on besides ``metadata.name``/``metadata.namespace``."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> tuple[str, str]:
        """Objects are stored per group and plural, whichever version they were written in."""
        return (self.group, self.plural)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)
_EXTRA_FIELDS = {
    ("", "events"): _EVENT_FIELDS,
    ("", "pods"): ("spec.nodeName", "status.phase", "spec.restartPolicy", "spec.schedulerName"),
    ("", "namespaces"): ("status.phase",),
    ("", "secrets"): ("type",),
    ("batch", "jobs"): ("status.successful",),
}


@dataclass
class Catalog:
    """The served resources: kmock's bundled built-ins plus whatever CRDs are established."""

    _types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def builtin(cls) -> Catalog:
        catalog = cls()
        for rt in _bundled():
            catalog.add(rt)
        return catalog

    def add(self, rt: ResourceType) -> None:
        with self._lock:
            self._types[(rt.group, rt.version, rt.plural)] = rt

    def remove_group_plural(self, group: str, plural: str) -> None:
        with self._lock:
            for key in [k for k in self._types if k[0] == group and k[2] == plural]:
                del self._types[key]

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        with self._lock:
            for rt in self._types.values():
                if rt.group == group and rt.version == version and rt.kind == kind:
                    return rt
        return None

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    # -- discovery documents -----------------------------------------------------------------------

    def groups(self) -> dict[str, list[str]]:
        """Group -> served versions, in the order they were added (a CRD's order: preferred first)."""
        out: dict[str, list[str]] = {}
        for rt in self.all():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    def api_versions(self, server_address: str) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        }

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.groups().get(group)
        if not versions or not group:
            return None
        return {
            "apiVersion": "v1",
            "kind": "APIGroup",
            "name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
        }

    def api_group_list(self) -> dict[str, Any]:
        groups = [self.api_group(g) for g in sorted(self.groups()) if g]
        return {"apiVersion": "v1", "kind": "APIGroupList", "groups": [g for g in groups if g]}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = sorted(
            (rt for rt in self.all() if rt.group == group and rt.version == version), key=lambda r: r.plural
        )
        if not types:
            return None
        resources: list[dict[str, Any]] = []
        for rt in types:
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(rt.verbs),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            for sub in sorted(rt.subresources):
                resources.append(
                    {
                        "name": f"{rt.plural}/{sub}",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "apiVersion": "v1",
            "kind": "APIResourceList",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }


@functools.cache
def _bundled() -> tuple[ResourceType, ...]:
    """kmock's bundled discovery snapshot, read once per process."""
    bundled = kmock.KubernetesScaffold()
    with warnings.catch_warnings():
        # kmock 0.8 reads its data file with importlib.resources.read_binary (deprecated in 3.11).
        warnings.filterwarnings("ignore", "read_binary is deprecated", DeprecationWarning)
        bundled.resources.load_bundled()
    out: list[ResourceType] = []
    for ref in bundled.resources:
        info = bundled.resources[ref]
        if not ref.plural or info.kind is None:
            continue
        out.append(
            ResourceType(
                group=ref.group or "",
                version=ref.version or "",
                plural=ref.plural,
                kind=info.kind,
                namespaced=bool(info.namespaced),
                singular=info.singular or info.kind.lower(),
                short_names=tuple(sorted(info.shortnames)),
                categories=tuple(sorted(info.categories)),
                subresources=frozenset(info.subresources),
                verbs=tuple(sorted(info.verbs)),
                field_selectors=_EXTRA_FIELDS.get((ref.group or "", ref.plural), ()),
            )
        )
    return tuple(out)


def server_version() -> dict[str, str]:
    return {
        "major": K8S_MAJOR,
        "minor": K8S_MINOR,
        "gitVersion": f"v{K8S_MAJOR}.{K8S_MINOR}.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def openapi_v3_index(catalog: Catalog) -> dict[str, Any]:
    """``/openapi/v3``: one entry per served group-version (kubectl's field-validation probe reads it)."""
    paths = {}
    for group, versions in catalog.groups().items():
        for version in versions:
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash=emulator"}
    return {"paths": paths}


def openapi_v3_group_version(catalog: Catalog, group: str, version: str) -> dict[str, Any] | None:
    """A stub OpenAPI document: no schemas, only PATCH operations that accept ``fieldValidation``.

    That is all kubectl needs to learn that the server validates fields itself; kubectl then sends
    ``fieldValidation=Strict`` and leaves validation to the server (and so to ``validation.py``).
    """
    types = [rt for rt in catalog.all() if rt.group == group and rt.version == version]
    if not types:
        return None
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Any] = {}
    for rt in types:
        scope = "/namespaces/{namespace}" if rt.namespaced else ""
        paths[f"{prefix}{scope}/{rt.plural}/{{name}}"] = {
            "patch": {
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rt.kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{K8S_MAJOR}.{K8S_MINOR}.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }
