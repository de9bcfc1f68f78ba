"""kopf's peering objects, for running the operator with ``--peering NAME`` (active/standby replicas).

kopf elects through a ``ClusterKopfPeering`` object (``kopf.dev/v1``, cluster-scoped) whose ``status``
maps each operator's identity to its priority and last keep-alive; kopf does not install its CRD, and
the wheel does not ship it, so this module restates kopf's documented definition. The highest priority
acts, the others pause their watches (kopf pauses a mandatory peering from the start, so a standby never
acts before it has seen its peers); a cleanly stopped operator removes its entry at once, a crashed one
is forgotten after its keep-alive ``lifetime`` (kopf's default: 60 s). Equal priorities pause
*everyone*, which is why ``__main__`` picks a random priority unless ``--priority`` is given.

``python -m pilothouse.operator --peering-manifests NAME`` prints both objects for ``kubectl apply -f -``.
The install bundle does not include them: it runs one replica (``--standalone``).
"""

from __future__ import annotations

from typing import Any

PEERING_GROUP = "kopf.dev"
PEERING_VERSION = "v1"
PEERING_KIND = "ClusterKopfPeering"
PEERING_PLURAL = "clusterkopfpeerings"


def peering_crd() -> dict[str, Any]:
    """kopf's ``ClusterKopfPeering`` CRD (``status`` is free-form: kopf writes one key per operator)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PEERING_PLURAL}.{PEERING_GROUP}"},
        "spec": {
            "scope": "Cluster",
            "group": PEERING_GROUP,
            "names": {
                "kind": PEERING_KIND,
                "plural": PEERING_PLURAL,
                "singular": PEERING_KIND.lower(),
            },
            "versions": [
                {
                    "name": PEERING_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    },
                }
            ],
        },
    }


def peering_object(name: str) -> dict[str, Any]:
    """The peering all replicas started with ``--peering NAME`` share (kopf requires it to exist)."""
    return {
        "apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}",
        "kind": PEERING_KIND,
        "metadata": {"name": name},
    }
