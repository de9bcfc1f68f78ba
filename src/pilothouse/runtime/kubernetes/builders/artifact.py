"""How a ``uri`` model's file reaches the model server's pod.

On one machine a model is a path; on a cluster there is no shared filesystem, so the URI must name
something every node can reach:

- ``s3://``, ``gs://``, ``http://``, ``https://``: an init container (the *storage initializer*, KServe's
  pattern) downloads the object into an ``emptyDir`` mounted at ``/models`` before the server starts.
  Its contract is ``args: [SOURCE_URI, DEST_DIR]``; credentials come from the optional Secret
  ``KubernetesConfig.storage_secret`` in the team namespace (``AWS_ACCESS_KEY_ID``, ...).
- ``pvc://<claim>/<path>``: the PersistentVolumeClaim is mounted read-only at ``/models``; nothing is
  copied, which suits large models pre-staged on shared storage.
- a path or ``file://`` URI: rejected with a message saying what to do. It names a file on the machine
  that wrote the manifest, not on any node, and silently baking it into an image would hide that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from pilothouse.api.errors import FieldProblem, ManifestError
from pilothouse.api.modelendpoint import ModelSource
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.builders.podspec import container_security_context

MODELS_DIR = "/models"
MODELS_VOLUME = "models"
DOWNLOAD_SCHEMES = ("s3", "gs", "http", "https")
CLUSTER_SCHEMES = (*DOWNLOAD_SCHEMES, "pvc")


@dataclass(frozen=True)
class Artifact:
    """Where the model server finds the file, and the volumes/init containers that put it there."""

    path: str
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    init_containers: list[dict[str, Any]] = field(default_factory=list)


def _problem(uri: str, why: str) -> ManifestError:
    return ManifestError(
        [
            FieldProblem(
                "spec.model.uri",
                f"{uri!r} {why}; on Kubernetes a model must come from "
                "s3://, gs://, http(s):// or pvc://<claim>/<path> (upload the file, or run it locally "
                "with `pilothouse up`)",
            )
        ]
    )


def artifact_for(model: ModelSource, config: KubernetesConfig) -> Artifact:
    """The fetch plan of a ``uri`` model; raises ``ManifestError`` for URIs no node can read."""
    uri = model.uri
    if uri is None:
        raise ValueError("artifact_for needs a uri model")
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file"):
        raise _problem(uri, "is a local file")
    if scheme not in CLUSTER_SCHEMES:
        raise _problem(uri, f"has an unsupported scheme {scheme!r}")
    if scheme == "pvc":
        claim, path = parsed.netloc, parsed.path.lstrip("/")
        if not claim or not path:
            raise _problem(uri, "must name a claim and a path (pvc://<claim>/<path>)")
        volume = {"name": MODELS_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        mount = {"name": MODELS_VOLUME, "mountPath": MODELS_DIR, "readOnly": True}
        return Artifact(f"{MODELS_DIR}/{path}", [volume], [mount])
    filename = PurePosixPath(parsed.path).name
    if not filename:
        raise _problem(uri, "does not name a file")
    volume = {"name": MODELS_VOLUME, "emptyDir": {}}
    initializer = {
        "name": "storage-initializer",
        "image": config.storage_initializer_image,
        "args": [uri, MODELS_DIR],
        "envFrom": [{"secretRef": {"name": config.storage_secret, "optional": True}}],
        "env": [{"name": "HOME", "value": "/tmp"}],  # noqa: S108 - an emptyDir
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": MODELS_VOLUME, "mountPath": MODELS_DIR},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    read_only = {"name": MODELS_VOLUME, "mountPath": MODELS_DIR, "readOnly": True}
    return Artifact(f"{MODELS_DIR}/{filename}", [volume], [read_only], [initializer])
