"""Names, labels and owner references shared by every built object.

Kubernetes checks names in Go code, not in the OpenAPI schemas: Services need DNS-1035 labels (63
characters, starting with a letter), and an Indexed Job's pods get the hostname ``<job>-<index>``, which
must itself be a DNS label. Generated names are therefore shortened with a stable hash suffix here,
once, rather than discovered to be invalid on a cluster.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from pilothouse.api.meta import API_VERSION

PART_OF = "pilothouse"
MANAGED_BY = "pilothouse-operator"
ENDPOINT_LABEL = "pilothouse.dev/endpoint"
REVISION_LABEL = "pilothouse.dev/revision"
JOB_LABEL = "pilothouse.dev/job"
TEAM_LABEL = "pilothouse.dev/team"
PRIORITY_LABEL = "pilothouse.dev/priority-class"
COMPONENT = "app.kubernetes.io/component"

DNS_LABEL_MAX = 63
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_dns1123_label(name: str) -> bool:
    return len(name) <= DNS_LABEL_MAX and bool(_DNS1123.match(name))


def is_dns1035_label(name: str) -> bool:
    return len(name) <= DNS_LABEL_MAX and bool(_DNS1035.match(name))


def shorten(name: str, limit: int) -> str:
    """``name`` if it fits, else a prefix plus an 8-hex hash of the whole name (stable, still unique)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def revision_name(endpoint: str, revision: int) -> str:
    """``<endpoint>-r<revision>``: the Deployment, Service and PDB of one revision; a DNS-1035 label."""
    base = f"{endpoint}-r{revision}"
    if not base[0].isalpha():
        base = f"me-{base}"  # a Service name must start with a letter; endpoint names may not
    return shorten(base, DNS_LABEL_MAX)


def job_name(name: str, workers: int) -> str:
    """The batch Job's name, short enough that ``<name>-<highest index>`` is still a DNS label."""
    return shorten(name, DNS_LABEL_MAX - 1 - len(str(max(workers - 1, 0))))


def standard_labels(*, name: str, instance: str, component: str) -> dict[str, str]:
    """The ``app.kubernetes.io`` recommended labels, the way ``kubectl``/dashboards group objects."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": shorten(instance, DNS_LABEL_MAX),
        COMPONENT: component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def owner_references(kind: str, name: str, uid: str | None) -> list[dict[str, object]]:
    """The controller owner reference to one of our resources, or none when the uid is not known yet.

    ``render`` builds objects before the API server has assigned a uid; a made-up uid would make the
    garbage collector delete the objects at once, so they are rendered without an owner instead.
    """
    if not uid:
        return []
    return [
        {
            "apiVersion": API_VERSION,
            "kind": kind,
            "name": name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def metadata(
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    owners: list[dict[str, object]] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, object]:
    meta: dict[str, object] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owners:
        meta["ownerReferences"] = owners
    return meta
