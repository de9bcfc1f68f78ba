"""``labelSelector`` and ``fieldSelector`` as the apiserver parses them (kmock 0.8 ignores both).

Written independently of ``pilothouse.api.selectors`` on purpose: the emulator is the reference the
store is tested against, so it must not share the code under test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import KubernetesError, bad_request

Matcher = Callable[[dict[str, Any]], bool]

_SET = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_KEY = re.compile(r"^[A-Za-z0-9./_-]+$")


def _split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _label_requirement(part: str) -> Callable[[dict[str, str]], bool]:
    match = _SET.match(part)
    if match:
        key, op = match.group(1), match.group(2)
        values = {v.strip() for v in match.group(3).split(",") if v.strip()}
        if op == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in part:
            key, value = (s.strip() for s in part.split(op, 1))
            if not _KEY.match(key):
                break
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if part.startswith("!") and _KEY.match(part[1:].strip()):
        key = part[1:].strip()
        return lambda labels: key not in labels
    if _KEY.match(part):
        return lambda labels: part in labels
    raise bad_request(f"unable to parse requirement: {part!r}")


def label_matcher(text: str | None) -> Matcher:
    requirements = [_label_requirement(p) for p in _split(text or "")]
    return lambda obj: all(r(obj.get("metadata", {}).get("labels") or {}) for r in requirements)


def _lookup(obj: dict[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return str(node).lower()
    if isinstance(node, dict):  # e.g. Event "source" is matched on its component
        return str(node.get("component", ""))
    return str(node)


def field_matcher(text: str | None, allowed: tuple[str, ...], what: str) -> Matcher:
    """Only ``metadata.name``, ``metadata.namespace`` and the resource's own fields; others are 400."""
    checks: list[Callable[[dict[str, Any]], bool]] = []
    for part in _split(text or ""):
        for op in ("!=", "==", "="):
            if op in part:
                path, value = (s.strip() for s in part.split(op, 1))
                break
        else:
            raise bad_request(f"invalid selector: {part!r}; can't understand {part!r}")
        if path not in {"metadata.name", "metadata.namespace", *allowed}:
            raise KubernetesError(
                status=400,
                reason="BadRequest",
                message=f'field label not supported: {path} for "{what}"',
                details={},
            )
        if op == "!=":
            checks.append(lambda obj, p=path, v=value: _lookup(obj, p) != v)
        else:
            checks.append(lambda obj, p=path, v=value: _lookup(obj, p) == v)
    return lambda obj: all(check(obj) for check in checks)
