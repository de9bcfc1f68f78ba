"""kopf settings and credentials for the operator, built by functions (nothing is read at import time).

- kopf keeps its bookkeeping in annotations under our own prefix (``pilothouse.dev/…``), not in
  ``status.kopf``: our CRD schemas prune unknown status fields. The finalizer is
  ``pilothouse.dev/finalizer``.
- Peering (``peering_name``) is kopf's active/standby election over its ``ClusterKopfPeering`` objects:
  the operator with the highest priority acts, the others pause (with equal priorities *all* pause, so
  each replica needs its own priority: ``__main__`` picks a random one). Standalone runs no election.
- Credentials come from the official client's ``Configuration`` (kubeconfig or in-cluster), so the store,
  the runtime and kopf always talk to the same cluster as the same user.
"""

from __future__ import annotations

import logging

import kopf

from kubernetes import client


def operator_settings(*, peering_name: str | None = None, priority: int = 0) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = "pilothouse.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="pilothouse.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="pilothouse.dev", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.connect_timeout = 10
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    settings.execution.max_workers = 8
    if peering_name:
        settings.peering.name = peering_name
        settings.peering.clusterwide = True
        settings.peering.mandatory = True
        settings.peering.priority = priority
        settings.peering.stealth = True
    else:
        settings.peering.standalone = True
    return settings


def connection_info(configuration: client.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from the official client's configuration (token, client cert or none)."""
    authorization = str((configuration.api_key or {}).get("authorization") or "")
    token = authorization.removeprefix("Bearer ").strip() or None
    return kopf.ConnectionInfo(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl,
        token=token,
        certificate_path=configuration.cert_file or None,
        private_key_path=configuration.key_file or None,
    )
