"""The three PATCH dialects, chosen by Content-Type as the apiserver does.

- ``application/json-patch+json`` (RFC 6902): a list of operations. A failed ``test`` is HTTP 422; kopf
  relies on that, prefixing its finalizer patches with ``test /metadata/resourceVersion``.
- ``application/merge-patch+json`` (RFC 7386): dicts merge, ``null`` deletes, lists are replaced.
- ``application/strategic-merge-patch+json``: like merge, but lists of named things merge by key
  (containers by ``name``, volumeMounts by ``mountPath``, conditions by ``type``...), finalizers merge as
  a set, and ``$patch: delete|replace`` directives work. The real server reads merge keys from Go struct
  tags; the table below covers the lists our manifests and the common controllers touch, and any other
  list of dicts that all have a ``name`` merges by name. Custom resources refuse this dialect (415),
  exactly like a real server.

kmock 0.8 treats every patch as a naive dict merge (lists replaced), which loses containers; that is why
patching lives here.
"""

from __future__ import annotations

import copy
from typing import Any

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class PatchError(Exception):
    """The patch cannot be applied; ``test_failed`` marks a failed JSON-patch ``test`` (HTTP 422)."""

    def __init__(self, message: str, *, test_failed: bool = False) -> None:
        super().__init__(message)
        self.test_failed = test_failed


# -- RFC 6902 ---------------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchError(f"path {path!r}: member {part!r} not found")
    return node


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise PatchError(f"path {path!r}: member {last!r} not found")


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError(f"path {path!r}: member {last!r} not found")


def _add(doc: Any, path: str, value: Any, *, replace: bool = False) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"path {path!r}: member {last!r} not found")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise PatchError(f"path {path!r}: index {last!r} out of range")
    else:
        raise PatchError(f"path {path!r}: parent is not a container")
    return doc


def json_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    out: Any = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "test":
            try:
                actual = _get(out, path)
            except PatchError as exc:
                raise PatchError(f"test failed: {exc}", test_failed=True) from exc
            if actual != op.get("value"):
                raise PatchError(
                    f"test failed: {path} is {actual!r}, not {op.get('value')!r}", test_failed=True
                )
        elif kind == "add":
            out = _add(out, path, copy.deepcopy(op.get("value")))
        elif kind == "replace":
            out = _add(out, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            _remove(out, path)
        elif kind in {"move", "copy"}:
            value = _get(out, op["from"]) if kind == "copy" else _remove(out, op["from"])
            out = _add(out, path, copy.deepcopy(value))
        else:
            raise PatchError(f"unknown operation {kind!r}")
    if not isinstance(out, dict):
        raise PatchError("the patched document is not an object")
    return out


# -- RFC 7386 ---------------------------------------------------------------------------------------


def merge_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# -- strategic merge (approximate) ------------------------------------------------------------------

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
SET_LISTS = frozenset({"finalizers"})
"""Primitive lists with ``patchStrategy: merge``: items are added, never replaced."""


def _merge_key(field: str, base: list[Any], patch: list[Any]) -> str | None:
    items = [i for i in [*base, *patch] if isinstance(i, dict) and i.get("$patch") is None]
    if field == "ports":
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    if field in MERGE_KEYS:
        return MERGE_KEYS[field]
    if items and all(isinstance(i, dict) and "name" in i for i in [*base, *patch]):
        return "name"
    return None


def _strategic_list(field: str, base: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field in SET_LISTS:
        out = list(base)
        out.extend(i for i in patch if i not in out)
        return out
    key = _merge_key(field, base, patch)
    if key is None:
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            continue
        index = next((n for n, b in enumerate(out) if isinstance(b, dict) and b.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
        elif index is None:
            out.append(strategic_merge_patch({}, item))
        else:
            out[index] = strategic_merge_patch(out[index], item)
    return out


def strategic_merge_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in {"$retainKeys", "$patch"}:
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            out[field] = [i for i in out.get(field, []) if i not in value]
            continue
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            out.pop(key, None)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = _strategic_list(key, out[key], value)
        elif isinstance(value, list):
            out[key] = [
                strategic_merge_patch({}, i) if isinstance(i, dict) else i
                for i in value
                if not (isinstance(i, dict) and i.get("$patch") == "delete")
            ]
        else:
            out[key] = strategic_merge_patch(out.get(key), value)
    return out
