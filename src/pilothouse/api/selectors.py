"""Equality-based label selectors (``app=iris,tier!=canary,team``), parsed once and matched anywhere.

The store filters with them and the CLI passes them through ``-l``; the grammar is Kubernetes' own
equality-based subset plus set-based ``in``/``notin``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pilothouse.api.errors import FieldProblem, ManifestError

Op = Literal["=", "!=", "in", "notin", "exists", "!exists"]

_SET = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Op
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return value == self.values[0]
        if self.op == "!=":
            return value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return value not in self.values
        if self.op == "exists":
            return present
        return not present


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_selector(text: str | None) -> tuple[Requirement, ...]:
    if not text:
        return ()
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        set_match = _SET.match(part)
        if set_match:
            values = tuple(v.strip() for v in set_match.group(3).split(",") if v.strip())
            reqs.append(Requirement(set_match.group(1), set_match.group(2), values))  # type: ignore[arg-type]
        elif "!=" in part:
            key, value = part.split("!=", 1)
            reqs.append(Requirement(key.strip(), "!=", (value.strip(),)))
        elif "=" in part:
            key, value = part.split("==", 1) if "==" in part else part.split("=", 1)
            reqs.append(Requirement(key.strip(), "=", (value.strip(),)))
        elif part.startswith("!"):
            reqs.append(Requirement(part[1:].strip(), "!exists"))
        elif re.match(r"^[A-Za-z0-9./_-]+$", part):
            reqs.append(Requirement(part, "exists"))
        else:
            raise ManifestError([FieldProblem("labelSelector", f"cannot parse {part!r}")])
    return tuple(reqs)


def matches(selector: tuple[Requirement, ...], labels: Mapping[str, str]) -> bool:
    return all(req.matches(labels) for req in selector)
