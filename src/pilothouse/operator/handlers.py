"""kopf handlers that drive the ``ControllerHost``: which kopf event means which reconcile.

For each of our kinds (``pilothouse.dev/v1alpha1``):

- ``on.resume`` / ``on.create`` / ``on.update``: reconcile now. Failures are kopf retries with
  exponential backoff (``TemporaryError``); an object the models cannot read is a ``PermanentError``
  (the CRD admitted it, so only a model/CRD mismatch gets here, and retrying cannot help).
- ``on.delete``: kopf puts its finalizer on every object, so deletion waits for the reconcilers'
  cleanup (stop replicas, withdraw the route, stop the gang); native objects then go by owner-reference
  garbage collection. A failing cleanup is retried with backoff and the object stays until it succeeds.
- ``on.event``: every change, status included (kopf's change handlers ignore status), becomes a
  follow-up reconcile; the work queue coalesces bursts.
- ``timer``: a level-triggered resync every ``resync_seconds``, as the embedded manager does.

And for the native objects we build (Deployments and batch Jobs labelled ``managed-by:
pilothouse-operator``), ``on.event`` re-reconciles the owner: a Deployment becoming ready makes its
endpoint Ready, a batch Job finishing finishes our Job.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
import pydantic
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from pilothouse.api.errors import ManifestError
from pilothouse.api.meta import GROUP, VERSION
from pilothouse.api.registry import KINDS
from pilothouse.controllers.manager import ObjectKey
from pilothouse.operator.host import ControllerHost
from pilothouse.runtime.kubernetes.builders.names import MANAGED_BY
from pilothouse.store.protocol import StoreError

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 30.0
CHILDREN = (("apps", "v1", "deployments"), ("batch", "v1", "jobs"))


def backoff(retry: int) -> float:
    return min(0.2 * 2.0**retry, MAX_BACKOFF_SECONDS)


def _key(kind: str, namespace: str | None, name: str | None) -> ObjectKey:
    return ObjectKey(kind, namespace or "", name or "")


def run_reconcile(host: ControllerHost, key: ObjectKey, retry: int) -> None:
    """Reconcile, translating failures into kopf's retry vocabulary (by type, never by message)."""
    try:
        host.reconcile(key)
    except (ManifestError, pydantic.ValidationError) as exc:
        raise kopf.PermanentError(f"{key}: {exc}") from exc
    except (StoreError, ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise kopf.TemporaryError(f"{key}: {exc}", delay=backoff(retry)) from exc


def register(registry: kopf.OperatorRegistry, host: ControllerHost, *, resync_seconds: float) -> None:
    for info in KINDS.values():
        _register_kind(registry, host, info.kind, info.plural, resync_seconds)
    for group, version, plural in CHILDREN:

        @kopf.on.event(
            group, version, plural, registry=registry, labels={"app.kubernetes.io/managed-by": MANAGED_BY}
        )
        def child_changed(body: kopf.Body, **_: Any) -> None:
            host.enqueue_owner(dict(body))

    @kopf.on.startup(registry=registry)
    def started(**_: Any) -> None:
        host.start()

    @kopf.on.cleanup(registry=registry)
    def stopped(**_: Any) -> None:
        host.stop()


def _register_kind(
    registry: kopf.OperatorRegistry, host: ControllerHost, kind: str, plural: str, resync_seconds: float
) -> None:
    resource = (GROUP, VERSION, plural)

    @kopf.on.resume(*resource, registry=registry, id=f"{kind}-resume")
    @kopf.on.create(*resource, registry=registry, id=f"{kind}-create")
    @kopf.on.update(*resource, registry=registry, id=f"{kind}-update")
    def changed(namespace: str | None, name: str | None, retry: int, **_: Any) -> None:
        run_reconcile(host, _key(kind, namespace, name), retry)

    @kopf.on.delete(*resource, registry=registry, id=f"{kind}-delete")
    def deleted(namespace: str | None, name: str | None, uid: str | None, retry: int, **_: Any) -> None:
        key = _key(kind, namespace, name)
        try:
            host.delete(key, uid or "")
        except (StoreError, ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise kopf.TemporaryError(f"{key}: cleanup failed: {exc}", delay=backoff(retry)) from exc

    @kopf.on.event(*resource, registry=registry, id=f"{kind}-event")
    def event(namespace: str | None, name: str | None, **_: Any) -> None:
        host.enqueue(_key(kind, namespace, name))

    @kopf.timer(
        *resource,
        registry=registry,
        id=f"{kind}-resync",
        interval=resync_seconds,
        initial_delay=resync_seconds,
    )
    def resync(namespace: str | None, name: str | None, **_: Any) -> None:
        host.enqueue(_key(kind, namespace, name))
