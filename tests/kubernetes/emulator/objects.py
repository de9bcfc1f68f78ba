"""The cluster's state: objects, one resourceVersion counter, the change log, GC, namespaces and CRDs.

This replaces kmock's ``ObjectsArray`` as the source of truth, because the semantics clients depend on
live in how a write is applied, not in storage: kmock sets no server-managed metadata, so kopf's
``test /metadata/resourceVersion`` patch and ``kopf.adopt()`` (owner uid) fail against it.

What a write does here, as on a real apiserver:

- one global, strictly increasing ``resourceVersion`` (etcd's revision); a write that changes nothing
  writes nothing and keeps the version;
- server-set ``uid``, ``creationTimestamp``, ``generation`` (bumped only when something other than
  metadata and status changes), ``generateName``;
- optimistic concurrency: a stale ``resourceVersion`` or a different ``uid`` in the body is 409;
  custom resources refuse updates without a ``resourceVersion`` (422), built-ins allow them;
- status subresource split: main writes keep the stored status, ``/status`` writes change only status;
- finalizers: DELETE only sets ``deletionTimestamp`` while any remain; removing the last one deletes;
  no finalizer may be added to an object being deleted;
- garbage collection, synchronously: an object whose every owner (by ``ownerReferences[].uid``) is gone
  is deleted too (``propagationPolicy=Orphan`` instead drops the references); deleting a namespace
  deletes its contents and then the namespace;
- creating in a missing namespace is 404, in a terminating one 403;
- CRDs: creating one serves its resources (discovery, validation against its schema); deleting it
  deletes its custom resources;
- the change log keeps the last ``retain_changes`` changes; a watch from before them gets 410
  (``compact()`` forgets the whole log, like an etcd compaction).

The state is guarded by one lock and is synchronous, so tests may change it from their own thread
(``kubelet`` helpers, fault setup) while the HTTP server runs in its own event loop.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import errors
from .discovery import Catalog, ResourceType
from .selectors import Matcher
from .validation import CRSchema, check_builtin, check_labels, check_name

Obj = dict[str, Any]
Key = tuple[str, str, str, str]
"""(group, plural, namespace, name); namespace is '' for cluster-scoped objects."""

BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_GENERATION_KINDS = frozenset(
    {
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Ingress",
        "CustomResourceDefinition",
    }
)
_SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Change:
    rv: int
    type: str
    group: str
    plural: str
    namespace: str
    obj: Obj


class Gone(Exception):
    """A watch asked for changes older than the retained log."""

    def __init__(self, since: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {since} ({oldest})")
        self.since = since
        self.oldest = oldest


def _body(obj: Obj) -> Obj:
    """Everything a generation is about: the object minus metadata and status."""
    return {k: v for k, v in obj.items() if k not in {"metadata", "status", "apiVersion", "kind"}}


def _same(a: Obj, b: Obj) -> bool:
    def strip(o: Obj) -> Obj:
        o = copy.deepcopy(o)
        o.get("metadata", {}).pop("resourceVersion", None)
        o.pop("apiVersion", None)
        o.pop("kind", None)
        return o

    return json.dumps(strip(a), sort_keys=True) == json.dumps(strip(b), sort_keys=True)


class ClusterState:
    def __init__(self, catalog: Catalog, *, retain_changes: int = 100_000) -> None:
        self.catalog = catalog
        self._lock = threading.RLock()
        self._rv = 0
        self._objects: dict[Key, Obj] = {}
        self._log: deque[Change] = deque()
        self._retain = retain_changes
        self._compacted = 0
        self._schemas: dict[tuple[str, str, str], CRSchema] = {}
        self._listeners: list[Callable[[], None]] = []
        ns_type = catalog.find("", "v1", "namespaces")
        assert ns_type is not None
        for name in BOOT_NAMESPACES:
            self.create(ns_type, "", {"metadata": {"name": name}})

    # -- plumbing ----------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[], None]) -> None:
        """``listener`` is called (under the lock, so it must be quick) after every committed change."""
        with self._lock:
            self._listeners.append(listener)

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def _commit(self, type_: str, key: Key, obj: Obj) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        group, plural, namespace, _ = key
        if type_ == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        self._log.append(Change(self._rv, type_, group, plural, namespace, copy.deepcopy(obj)))
        while len(self._log) > self._retain:
            self._compacted = self._log.popleft().rv
        for listener in self._listeners:
            listener()
        return obj

    def compact(self) -> int:
        """Forget the change log (an etcd compaction): watches from an older version get 410."""
        with self._lock:
            self._log.clear()
            self._compacted = self._rv
            return self._rv

    def changes_after(self, since: int, match: Callable[[Change], bool]) -> tuple[list[Change], int]:
        with self._lock:
            if since < self._compacted:
                raise Gone(since, self._compacted)
            newer: list[Change] = []
            for change in reversed(self._log):
                if change.rv <= since:
                    break
                newer.append(change)
            return [c for c in reversed(newer) if match(c)], self._rv

    def snapshot(self, rt: ResourceType, namespace: str | None, match: Matcher) -> tuple[list[Obj], int]:
        with self._lock:
            return self._select(rt, namespace, match), self._rv

    @staticmethod
    def _key(rt: ResourceType, namespace: str, name: str) -> Key:
        return (rt.group, rt.plural, namespace if rt.namespaced else "", name)

    def _present(self, rt: ResourceType, obj: Obj) -> Obj:
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version
        out["kind"] = rt.kind
        return out

    def _select(self, rt: ResourceType, namespace: str | None, match: Matcher) -> list[Obj]:
        items = [
            self._present(rt, obj)
            for (group, plural, ns, _), obj in self._objects.items()
            if group == rt.group and plural == rt.plural and (namespace is None or ns == namespace)
        ]
        items = [o for o in items if match(o)]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items

    # -- admission ---------------------------------------------------------------------------------

    def _admit(self, rt: ResourceType, obj: Obj, *, strict_fields: bool) -> tuple[Obj, list[str]]:
        name = obj["metadata"].get("name", "")
        causes = check_name(rt, name) + check_labels(obj["metadata"].get("labels"))
        unknown: list[str] = []
        if rt.custom:
            schema = self._schemas.get((rt.group, rt.version, rt.plural))
            if schema is not None:
                obj, more, unknown = schema.admit(obj, strict_fields=strict_fields)
                if unknown and strict_fields:
                    raise errors.bad_request(
                        f"{rt.kind} in version {rt.version!r} cannot be handled as a {rt.kind}: "
                        f"strict decoding error: {', '.join(f'unknown field {u!r}' for u in unknown)}"
                    )
                causes += more
        else:
            causes += check_builtin(obj)
        if rt.kind == "CustomResourceDefinition" and not causes:
            spec = obj.get("spec") or {}
            expected = f"{(spec.get('names') or {}).get('plural')}.{spec.get('group')}"
            if name != expected:
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.name",
                        "message": f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                    }
                )
        if causes:
            raise errors.invalid(rt.kind, name, causes, rt.group)
        return obj, unknown

    def _has_generation(self, rt: ResourceType) -> bool:
        return rt.custom or rt.kind in _GENERATION_KINDS

    # -- reads -------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        with self._lock:
            obj = self._objects.get(self._key(rt, namespace, name))
            if obj is None:
                raise errors.not_found(rt.plural, name, rt.group)
            return self._present(rt, obj)

    def list(
        self, rt: ResourceType, namespace: str | None, match: Matcher, limit: int = 0, cont: str = ""
    ) -> Obj:
        with self._lock:
            items, rv = self._select(rt, namespace, match), self._rv
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                after, rv = tuple(token["after"]), int(token["rv"])
            except (ValueError, KeyError) as exc:
                raise errors.bad_request(f"invalid continue token: {exc}") from exc
            items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after]
        meta: Obj = {"resourceVersion": str(rv)}
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            after = [last.get("namespace", ""), last["name"]]
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"after": after, "rv": rv}).encode()
            ).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if not rt.custom:  # like the real server, built-in list items carry no apiVersion/kind
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return {"apiVersion": rt.api_version, "kind": f"{rt.kind}List", "metadata": meta, "items": items}

    # -- writes ------------------------------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Obj,
        *,
        dry_run: bool = False,
        strict_fields: bool = False,
    ) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        self._check_type(rt, obj)
        if rt.namespaced:
            given = meta.get("namespace")
            if given and namespace and given != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or given or ""
        else:
            meta.pop("namespace", None)
        with self._lock:
            if not meta.get("name"):
                prefix = meta.get("generateName")
                if not prefix:
                    raise errors.invalid(
                        rt.kind,
                        "",
                        [
                            {
                                "reason": "FieldValueRequired",
                                "field": "metadata.name",
                                "message": "Required value: name or generateName is required",
                            }
                        ],
                        rt.group,
                    )
                while True:
                    meta["name"] = prefix + "".join(random.choices(_NAME_CHARS, k=5))
                    if (
                        self._key(rt, meta["namespace"] if rt.namespaced else "", meta["name"])
                        not in self._objects
                    ):
                        break
            if rt.namespaced:
                self._check_namespace(meta["namespace"])
            for field in (*_SERVER_META, "resourceVersion", "managedFields", "selfLink"):
                meta.pop(field, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if self._has_generation(rt):
                meta["generation"] = 1
            if rt.has_status:
                obj.pop("status", None)
            if rt.kind == "Namespace":
                obj["status"] = {"phase": "Active"}
            obj["apiVersion"] = rt.api_version
            obj["kind"] = rt.kind
            obj, _ = self._admit(rt, obj, strict_fields=strict_fields)
            key = self._key(rt, meta["namespace"] if rt.namespaced else "", meta["name"])
            if key in self._objects:
                raise errors.already_exists(rt.plural, meta["name"], rt.group)
            if rt.kind == "CustomResourceDefinition":
                obj["status"] = self._crd_status(obj)
            if dry_run:
                return self._present(rt, obj)
            self._commit("ADDED", key, obj)
            if rt.kind == "CustomResourceDefinition":
                self._serve_crd(obj)
            return self._present(rt, obj)

    def replace(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Obj,
        *,
        status: bool = False,
        dry_run: bool = False,
        strict_fields: bool = False,
        require_version: bool | None = None,
    ) -> Obj:
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        self._check_type(rt, body)
        meta = body.get("metadata") or {}
        if meta.get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        with self._lock:
            key = self._key(rt, namespace, name)
            old = self._objects.get(key)
            if old is None:
                raise errors.not_found(rt.plural, name, rt.group)
            self._check_preconditions(
                rt, old, meta, require_version=rt.custom if require_version is None else require_version
            )
            return self._write(
                rt, key, old, body, status=status, dry_run=dry_run, strict_fields=strict_fields
            )

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        apply: Callable[[Obj], Obj],
        *,
        status: bool = False,
        dry_run: bool = False,
        strict_fields: bool = False,
    ) -> Obj:
        """``apply`` turns the current object into the patched one (it may raise ``KubernetesError``)."""
        with self._lock:
            key = self._key(rt, namespace, name)
            old = self._objects.get(key)
            if old is None:
                raise errors.not_found(rt.plural, name, rt.group)
            patched = apply(self._present(rt, old))
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise errors.bad_request("the patched object must be a JSON object with metadata")
            meta = patched["metadata"]
            self._check_preconditions(rt, old, meta, require_version=False)
            return self._write(
                rt, key, old, patched, status=status, dry_run=dry_run, strict_fields=strict_fields
            )

    def mutate(
        self, rt: ResourceType, namespace: str, name: str, fn: Callable[[Obj], None], *, status: bool
    ) -> Obj:
        """A server-side write for tests and emulated controllers (no HTTP, no preconditions)."""

        def apply(obj: Obj) -> Obj:
            fn(obj)
            return obj

        return self.patch(rt, namespace, name, apply, status=status)

    def _check_type(self, rt: ResourceType, obj: Obj) -> None:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if (kind and kind != rt.kind) or (api_version and api_version.rpartition("/")[0] != rt.group):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) and kind ({kind}) do not match "
                f"the resource {rt.plural}.{rt.group or 'core'} ({rt.api_version} {rt.kind})"
            )

    def _check_preconditions(self, rt: ResourceType, old: Obj, meta: Obj, *, require_version: bool) -> None:
        name = old["metadata"]["name"]
        uid = meta.get("uid")
        if uid and uid != old["metadata"]["uid"]:
            raise errors.conflict(
                rt.plural,
                name,
                rt.group,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {old['metadata']['uid']}",
            )
        rv = meta.get("resourceVersion")
        if not rv and require_version:
            raise errors.invalid(
                rt.kind,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.resourceVersion",
                        "message": "Invalid value: 0x0: must be specified for an update",
                    }
                ],
                rt.group,
            )
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, name, rt.group)

    def _write(
        self,
        rt: ResourceType,
        key: Key,
        old: Obj,
        body: Obj,
        *,
        status: bool,
        dry_run: bool,
        strict_fields: bool,
    ) -> Obj:
        if status:
            if not rt.has_status:
                raise errors.not_found(f"{rt.plural}/status", key[3], rt.group)
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(body)
            new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
            meta = new.setdefault("metadata", {})
            for field in ("name", "namespace", *_SERVER_META):
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
                else:
                    meta.pop(field, None)
            meta.pop("managedFields", None)
            if rt.has_status or rt.kind == "Namespace":
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            if old["metadata"].get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
                if added:
                    raise errors.forbidden(
                        f"Forbidden: no new finalizers can be added if the object is being deleted, "
                        f"found new finalizers {sorted(added)}"
                    )
            if self._has_generation(rt) and _body(new) != _body(old):
                meta["generation"] = int(old["metadata"].get("generation") or 0) + 1
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        new, _ = self._admit(rt, new, strict_fields=strict_fields)
        if rt.kind == "CustomResourceDefinition":
            new["status"] = self._crd_status(new)
        if _same(new, old):
            return self._present(rt, old)
        if dry_run:
            return self._present(rt, new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self._present(rt, self._remove(key, new))
        self._commit("MODIFIED", key, new)
        if rt.kind == "CustomResourceDefinition":
            self._serve_crd(new)
        return self._present(rt, new)

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        options: Obj | None = None,
        dry_run: bool = False,
    ) -> Obj:
        options = options or {}
        with self._lock:
            key = self._key(rt, namespace, name)
            old = self._objects.get(key)
            if old is None:
                raise errors.not_found(rt.plural, name, rt.group)
            pre = options.get("preconditions") or {}
            self._check_preconditions(rt, old, pre, require_version=False)
            if dry_run:
                return self._present(rt, old)
            orphan = options.get("propagationPolicy") == "Orphan" or options.get("orphanDependents") is True
            return self._present(rt, self._delete(key, orphan=orphan))

    def _delete(self, key: Key, *, orphan: bool = False) -> Obj:
        obj = self._objects[key]
        meta = obj["metadata"]
        if key[:2] == ("", "namespaces"):
            return self._delete_namespace(key)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return obj
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit("MODIFIED", key, new)
        return self._remove(key, obj, orphan=orphan)

    def _remove(self, key: Key, obj: Obj, *, orphan: bool = False) -> Obj:
        gone = self._commit("DELETED", key, copy.deepcopy(obj))
        uid = gone["metadata"]["uid"]
        if gone.get("kind") == "CustomResourceDefinition":
            self._unserve_crd(gone)
        for dep_key, dep in list(self._objects.items()):
            refs = dep["metadata"].get("ownerReferences") or []
            if dep_key not in self._objects or not any(r.get("uid") == uid for r in refs):
                continue
            if orphan:
                new = copy.deepcopy(dep)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid] or None
                if new["metadata"]["ownerReferences"] is None:
                    del new["metadata"]["ownerReferences"]
                self._commit("MODIFIED", dep_key, new)
            elif not any(self._uid_exists(r.get("uid")) for r in refs if r.get("uid") != uid):
                self._delete(dep_key)
        self._finish_namespace(key[2])
        return gone

    def _uid_exists(self, uid: str | None) -> bool:
        return any(o["metadata"]["uid"] == uid for o in self._objects.values())

    # -- namespaces --------------------------------------------------------------------------------

    def _check_namespace(self, namespace: str) -> None:
        ns = self._objects.get(("", "namespaces", "", namespace))
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                f"unable to create new content in namespace {namespace} because it is being terminated"
            )

    def _delete_namespace(self, key: Key) -> Obj:
        name = key[3]
        obj = self._objects[key]
        if not obj["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["status"] = {"phase": "Terminating"}
            obj = self._commit("MODIFIED", key, new)
        for inner in [k for k in self._objects if k[2] == name and k[:2] != ("", "namespaces")]:
            if inner in self._objects:
                self._delete(inner)
        self._finish_namespace(name)
        return self._objects.get(key, obj)

    def _finish_namespace(self, name: str) -> None:
        key = ("", "namespaces", "", name)
        ns = self._objects.get(key)
        if not name or ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if any(k[2] == name for k in self._objects if k[:2] != ("", "namespaces")):
            return
        self._commit("DELETED", key, copy.deepcopy(ns))

    # -- CRDs --------------------------------------------------------------------------------------

    @staticmethod
    def _crd_status(crd: Obj) -> Obj:
        spec = crd.get("spec") or {}
        now = now_rfc3339()
        stored = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        return {
            "acceptedNames": copy.deepcopy(spec.get("names") or {}),
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now,
                },
            ],
            "storedVersions": stored,
        }

    def _serve_crd(self, crd: Obj) -> None:
        spec = crd["spec"]
        names = spec["names"]
        self.catalog.remove_group_plural(spec["group"], names["plural"])
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or {}
            rt = ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=frozenset((version.get("subresources") or {}).keys()),
                verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
                custom=True,
                schema=schema,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
            )
            self._schemas[(rt.group, rt.version, rt.plural)] = CRSchema(schema)
            self.catalog.add(rt)

    def _unserve_crd(self, crd: Obj) -> None:
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        self.catalog.remove_group_plural(group, plural)
        for key in [k for k in self._objects if k[0] == group and k[1] == plural]:
            if key in self._objects:
                self._commit("DELETED", key, copy.deepcopy(self._objects[key]))


__all__ = ["BOOT_NAMESPACES", "Change", "ClusterState", "Gone", "Obj", "now_rfc3339"]
