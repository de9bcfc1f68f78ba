"""Multi-document YAML the way ``kubectl`` users read it: keys in build order, block style, ``---`` between.

Key order is the builders' order (apiVersion, kind, metadata, spec), not alphabetical, so a rendered
Deployment reads like a hand-written one and the checked-in files diff cleanly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Indents list items under their key, as ``kubectl get -o yaml`` does."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump(obj: Mapping[str, Any]) -> str:
    return yaml.dump(dict(obj), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def dump_all(objects: Iterable[Mapping[str, Any]], header: str = "") -> str:
    """``header`` (comment lines) first, then the objects separated by ``---``."""
    docs = [dump(obj) for obj in objects]
    return header + "---\n" + "---\n".join(docs) if docs else header
