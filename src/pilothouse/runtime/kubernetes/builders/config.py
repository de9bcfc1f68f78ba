"""What a cluster operator may choose: images, the system namespace, how GPUs are selected.

One frozen object with defaults, passed explicitly to every builder (no settings read at import time),
so the operator, ``render`` and tests can each build with their own choices.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilothouse import __version__

IMAGE_REPOSITORY = "ghcr.io/pilothouse"
"""Placeholder registry for our images until release images are published; override per cluster."""


@dataclass(frozen=True)
class KubernetesConfig:
    system_namespace: str = "pilothouse-system"
    model_server_image: str = f"{IMAGE_REPOSITORY}/modelserver:{__version__}"
    """Runs ``python -m pilothouse.serving.modelserver``; also the base image of ``command`` models."""
    storage_initializer_image: str = f"{IMAGE_REPOSITORY}/storage-initializer:{__version__}"
    """Init container contract: ``args: [SOURCE_URI, DEST_DIR]``; downloads one s3/gs/http(s) object."""
    storage_secret: str = "pilothouse-storage"  # noqa: S105 - the name of a Secret
    """Secret in the team namespace whose keys become the initializer's env (AWS_*, GOOGLE_*); optional."""
    job_base_image: str = f"{IMAGE_REPOSITORY}/modelserver:{__version__}"
    """Image for ``Job``s that give a ``command`` but no ``image``."""
    gateway_image: str = f"{IMAGE_REPOSITORY}/gateway:{__version__}"
    operator_image: str = f"{IMAGE_REPOSITORY}/operator:{__version__}"
    gateway_replicas: int = 2
    accelerator_label: str = "pilothouse.dev/accelerator"
    """A ModelEndpoint/Job label with this key becomes a pod nodeSelector with the same key and value."""
    run_as_user: int = 65532
    """Every pod runs as this non-root uid/gid (the distroless ``nonroot`` user)."""
    startup_timeout_seconds: int = 1800
    """How long a model server may take to load (large models from object storage take minutes)."""
    server_port: int = 8080
    default_cpu_request: str = "100m"
    default_memory_request: str = "256Mi"
    default_memory_limit: str = "1Gi"
