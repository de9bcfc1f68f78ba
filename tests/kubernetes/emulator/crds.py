"""The CRDs our tests install in the emulator: ``pilothouse.api.crd.all_crds()`` when it exists.

Another part of the project generates our real CRDs (``pilothouse.api.crd``); while that module is not
there, a minimal CRD per kind stands in: the right group, version, names, scope and status subresource,
with ``spec`` and ``status`` left open (``x-kubernetes-preserve-unknown-fields``). ``source`` says which
one a test run used.
"""

from __future__ import annotations

import copy
import functools
import importlib
from typing import Any

from pilothouse.api.meta import GROUP, VERSION
from pilothouse.api.registry import KINDS

from .server import KubernetesApiEmulator

TEAM_NAMESPACES = ("a", "b", "other", "prod")
"""Namespaces (teams) the store tests write to, besides ``default``."""


def minimal_crds() -> list[dict[str, Any]]:
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    crds = []
    for info in KINDS.values():
        crds.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{info.plural}.{GROUP}"},
                "spec": {
                    "group": GROUP,
                    "scope": "Namespaced" if info.namespaced else "Cluster",
                    "names": {
                        "plural": info.plural,
                        "singular": info.singular,
                        "kind": info.kind,
                        "shortNames": list(info.short_names),
                    },
                    "versions": [
                        {
                            "name": VERSION,
                            "served": True,
                            "storage": True,
                            "subresources": {"status": {}},
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "properties": {"spec": open_object, "status": open_object},
                                }
                            },
                        }
                    ],
                },
            }
        )
    return crds


def pilothouse_crds() -> tuple[str, list[dict[str, Any]]]:
    """(source, CRDs): the generated ones if ``pilothouse.api.crd`` exists, else the minimal ones."""
    source, crds = _crds()
    return source, copy.deepcopy(crds)


@functools.cache
def _crds() -> tuple[str, list[dict[str, Any]]]:
    """Generating CRDs from the models takes ~0.4 s; once per process is enough."""
    try:
        module = importlib.import_module("pilothouse.api.crd")
    except ImportError:
        return "minimal", minimal_crds()
    return "pilothouse.api.crd", [dict(crd) for crd in module.all_crds()]


def install_pilothouse(emulator: KubernetesApiEmulator) -> str:
    """Create our CRDs and the test namespaces in the emulator; returns where the CRDs came from."""
    source, crds = pilothouse_crds()
    for crd in crds:
        emulator.create(crd)
    for name in TEAM_NAMESPACES:
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return source
