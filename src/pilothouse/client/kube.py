"""``KubeClient``: the CLI's client when it talks to a Kubernetes cluster (``--kubeconfig``/``--context``).

It answers every call the CLI makes of ``PilothouseClient`` (it is a subclass, so every call site typed
for the HTTP client accepts it) from the cluster itself, with the same building blocks the operator uses:

- objects, spec history and events: ``KubeStore`` (our custom resources, ControllerRevisions, core/v1
  Events); ``apply``'s dry run is the API server's ``dryRun=All``;
- replicas: ``KubernetesRuntime.observe`` (synthesised from the revision Deployments); logs: the pods'
  logs (a replica id ``<deployment>-NNN`` picks that Deployment's N-th pod by name, a pod name picks that
  pod; a Job's ``worker-N`` picks the pod with completion index N).

**Admission.** The embedded server checks, before storing, what only its runtime knows; here the same
check runs client-side with ``KubernetesRuntime.admit`` before anything is sent, so ``apply`` of an
endpoint whose ``uri`` is a local file fails at once with ``spec.model.uri`` named (the operator reports
the same problem in ``status.conditions`` for objects written by ``kubectl``). The CRD's own validation
answers with 422 ``Invalid`` and one cause per field. A command Job's ``workingDir`` that manifest
loading pointed at a directory of this machine is dropped, as ``render`` does: the pod has no such
directory.

**Errors** reach the CLI as the ``ApiError`` the HTTP client raises, with the same ``reason`` and
``causes``: store errors by type (``NotFound``, ``AlreadyExists``, ``Conflict``, ``Expired``), a
``ManifestError`` as ``Invalid`` with one cause per field, other API answers with their ``Status``, and an
unreachable API server or an unusable kubeconfig as one line naming it. The connection is made on first
use, so ``with state.client() as client`` never fails outside the CLI's error handling.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pilothouse.api.errors import FieldProblem, ManifestError
from pilothouse.api.job import Job
from pilothouse.api.meta import GROUP
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import KindInfo, Resource
from pilothouse.api.selectors import parse_selector
from pilothouse.client.errors import ApiError
from pilothouse.client.http import ApplyResult, PilothouseClient
from pilothouse.runtime.kubernetes import connect as cluster
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.builders.gateway import GATEWAY_NAME
from pilothouse.runtime.kubernetes.builders.names import COMPONENT, JOB_LABEL
from pilothouse.runtime.kubernetes.runtime import KubernetesRuntime
from pilothouse.store.kube import KubeStore
from pilothouse.store.protocol import AlreadyExists, Conflict, Expired, NotFound, StoreError

_REASONS: dict[type[StoreError], str] = {
    NotFound: "NotFound",
    AlreadyExists: "AlreadyExists",
    Conflict: "Conflict",
    Expired: "Expired",
}
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
SYSTEM_ANNOTATION_PREFIXES = frozenset({GROUP, "kopf.zalando.org", "kopf.dev"})


def api_error(exc: Exception) -> ApiError:
    """The ``ApiError`` (Kubernetes ``Status`` shape) for a failure of the store, runtime or connection."""
    if isinstance(exc, ManifestError):
        causes = [{"field": p.path, "message": p.message} for p in exc.problems]
        return ApiError(422, "Invalid", str(exc), causes)
    if isinstance(exc, StoreError):
        return ApiError(exc.status_code, _REASONS.get(type(exc), "InternalError"), str(exc))
    if isinstance(exc, cluster.ClusterApiError):
        return ApiError.from_response(exc.code, exc.status or None, str(exc))
    if isinstance(exc, cluster.ClusterUnreachable):
        return ApiError(0, "Unreachable", f"{exc}; check --kubeconfig/--context")
    if isinstance(exc, cluster.ClusterConfigError):
        return ApiError(0, "InvalidConfiguration", str(exc))
    raise exc


def _system_annotation(key: str) -> bool:
    """Written by the operator (kopf) or by Kubernetes tooling, never by a Pilothouse manifest."""
    prefix = key.partition("/")[0] if "/" in key else ""
    return prefix in SYSTEM_ANNOTATION_PREFIXES or prefix.endswith(("kubernetes.io", "k8s.io"))


def _local_directory(path: str) -> bool:
    try:
        return Path(path).is_absolute() and Path(path).is_dir()
    except OSError:
        return False


class KubeClient(PilothouseClient):
    """``PilothouseClient``'s methods against a cluster; build it with ``from_kubeconfig`` or an ApiClient."""

    _owns_api = True

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        config: KubernetesConfig | None = None,
        server: str = "<kubeconfig>",
    ) -> None:
        # No super().__init__(): there is no HTTP client here. Every method the CLI calls is overridden;
        # the HTTP-only ones inherited (top, cost) reach ``_request``, which refuses them.
        self.config = config or KubernetesConfig()
        self.base_url = server
        self._connect = connect
        self._api: Any = None
        self._store: KubeStore | None = None
        self._runtime: KubernetesRuntime | None = None

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: str | None, context: str | None, *, config: KubernetesConfig | None = None
    ) -> KubeClient:
        where = f"{kubeconfig or '$KUBECONFIG'}" + (f" (context {context})" if context else "")
        return cls(lambda: cluster.connect(kubeconfig, context), config=config, server=where)

    @classmethod
    def from_api_client(cls, api_client: Any, *, config: KubernetesConfig | None = None) -> KubeClient:
        """Over an existing ``kubernetes.client.ApiClient`` (tests); ``close`` leaves it open."""
        client = cls(lambda: api_client, config=config, server=cluster.server_url(api_client))
        client._owns_api = False
        return client

    # -- plumbing ---------------------------------------------------------------------------------

    def _ensure(self) -> tuple[KubeStore, KubernetesRuntime]:
        if self._store is None or self._runtime is None:
            self._api = self._connect()
            self.base_url = cluster.server_url(self._api)
            self._store = KubeStore(self._api, system_namespace=self.config.system_namespace)
            self._runtime = KubernetesRuntime(self._api, self.config)
        return self._store, self._runtime

    @property
    def store(self) -> KubeStore:
        return self._ensure()[0]

    @property
    def runtime(self) -> KubernetesRuntime:
        return self._ensure()[1]

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Calls only the embedded control plane serves (``top``, ``cost``) end here, as one clear error."""
        raise ApiError(
            501,
            "NotSupported",
            f"{method} {path} is served by `pilothouse up` only; it is not available with --kubeconfig/--context",
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            with cluster.translated(lambda: self.base_url):
                yield
        except (
            ManifestError,
            StoreError,
            cluster.ClusterApiError,
            cluster.ClusterUnreachable,
            cluster.ClusterConfigError,
        ) as exc:
            raise api_error(exc) from exc

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._runtime is not None:
            self._runtime.close()
        if self._api is not None and self._owns_api:
            self._api.close()
        self._store = self._runtime = self._api = None

    def __enter__(self) -> KubeClient:
        return self

    # -- admission (what the embedded server checks before storing) -------------------------------

    def _for_cluster(self, obj: Resource) -> Resource:
        """Drop what only makes sense on this machine: a command Job's local working directory."""
        spec = obj.spec
        if isinstance(obj, Job) and obj.spec.image is None and _local_directory(obj.spec.workingDir or ""):
            spec = obj.spec.model_copy(update={"workingDir": None})
        return obj if spec is obj.spec else obj.model_copy(update={"spec": spec})

    def _admit(self, obj: Resource) -> Resource:
        obj = self._for_cluster(obj)
        if isinstance(obj, ModelEndpoint):
            problems: list[FieldProblem] = self.runtime.admit(obj)
            if problems:
                raise ManifestError(problems)
        return obj

    # -- resources --------------------------------------------------------------------------------

    def version(self) -> dict[str, str]:
        with self._errors():
            self._ensure()
            version = cluster.server_version(self._api)
        gateway = f"http://{GATEWAY_NAME}.{self.config.system_namespace}.svc.cluster.local"
        return {"version": f"Kubernetes {version}", "runtime": "kubernetes", "gatewayURL": gateway}

    def healthy(self) -> bool:
        try:
            self.version()
        except ApiError:
            return False
        return True

    def create(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        with self._errors():
            return self.store.create(self._admit(obj), dry_run=dry_run)

    def get(self, info: KindInfo, namespace: str, name: str) -> Resource:
        with self._errors():
            return self.store.get(info.kind, namespace if info.namespaced else "", name)

    def list(
        self, info: KindInfo, namespace: str | None = None, selector: str | None = None
    ) -> builtins.list[Resource]:
        with self._errors():
            requirements = parse_selector(selector)
            return self.store.list(info.kind, namespace if info.namespaced else None, requirements).items

    def replace(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        with self._errors():
            return self.store.update(self._admit(obj), dry_run=dry_run)

    def delete(self, info: KindInfo, namespace: str, name: str) -> Resource:
        with self._errors():
            return self.store.delete(info.kind, namespace if info.namespaced else "", name)

    def apply(self, obj: Resource, *, dry_run: bool = False, retries: int = 5) -> ApplyResult:
        """Create, or update spec, labels and annotations (last writer wins), like the HTTP client.

        Unlike the embedded store, a cluster object carries annotations no manifest mentions: kopf's
        bookkeeping under ``pilothouse.dev/`` and whatever Kubernetes tools write under
        ``*.kubernetes.io/``/``*.k8s.io/``. Those are kept (dropping kopf's would make it handle the
        object as new); other annotations are the manifest's.
        """
        return super().apply(self._for_cluster(obj), dry_run=dry_run, retries=retries)

    def _applied_annotations(self, current: Resource, applied: Resource) -> dict[str, str]:
        kept = {k: v for k, v in current.metadata.annotations.items() if _system_annotation(k)}
        return {**kept, **applied.metadata.annotations}

    # -- observations -----------------------------------------------------------------------------

    def events(
        self, namespace: str, kind: str | None = None, name: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        with self._errors():
            return [
                e.model_dump(mode="json")
                for e in self.store.list_events(namespace=namespace)
                if (kind is None or e.involvedObject.kind == kind)
                and (name is None or e.involvedObject.name == name)
            ]

    def _uid(self, info: KindInfo, namespace: str, name: str) -> str:
        uid = self.get(info, namespace, name).metadata.uid
        assert uid is not None
        return uid

    def replicas_of(self, owner_uid: str) -> builtins.list[dict[str, Any]]:
        with self._errors():
            states = self.runtime.observe(owner_uid)
        items: builtins.list[dict[str, Any]] = json.loads(json.dumps([asdict(s) for s in states]))
        return items

    def replicas(self, info: KindInfo, namespace: str, name: str) -> builtins.list[dict[str, Any]]:
        return self.replicas_of(self._uid(info, namespace, name))

    def history(self, info: KindInfo, namespace: str, name: str) -> builtins.list[dict[str, Any]]:
        uid = self._uid(info, namespace, name)
        with self._errors():
            return [
                {"generation": r.generation, "created": r.created.isoformat(), "spec": r.spec}
                for r in self.store.history(uid)
            ]

    def _pods(self, obj: Resource, replica: str | None) -> builtins.list[dict[str, Any]]:
        meta = obj.metadata
        if isinstance(obj, Job):
            selector = f"{JOB_LABEL}={meta.name},{COMPONENT}=worker"
            pods = sorted(
                self.runtime.api.list("Pod", meta.namespace, selector),
                key=lambda p: p["metadata"]["name"],
            )
            if replica is None:
                return pods
            index = replica.removeprefix("worker-")
            return [
                p
                for p in pods
                if p["metadata"]["name"] == replica
                or ((p["metadata"].get("labels") or {}).get(COMPLETION_INDEX) == index)
            ]
        assert meta.uid is not None
        pods = sorted(self.runtime.pods(meta.uid), key=lambda p: p["metadata"]["name"])
        if replica is None:
            return pods
        exact = [p for p in pods if p["metadata"]["name"] == replica]
        if exact:
            return exact
        deployment, _, index = replica.rpartition("-")
        of_revision = [p for p in pods if p["metadata"]["name"].startswith(f"{deployment}-")]
        if index.isdigit() and int(index) < len(of_revision):
            return [of_revision[int(index)]]
        return []

    def logs(
        self,
        info: KindInfo,
        namespace: str,
        name: str,
        *,
        replica: str | None = None,
        follow: bool = False,
        tail: int | None = None,
    ) -> Iterator[str]:
        obj = self.get(info, namespace, name)
        with self._errors():
            pods = self._pods(obj, replica)
            if replica is not None and not pods:
                raise NotFound(f"{name} has no replica {replica!r} (a pod name or a replica id)")
            yield from self.runtime.pod_logs(pods, follow=follow, tail=tail)

    def watch(
        self,
        info: KindInfo,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        timeout: float = 60,
    ) -> Iterator[tuple[str, Resource]]:
        with self._errors():
            since = int(resource_version) if resource_version and resource_version.isdigit() else 0
            for event in self.store.watch(info.kind, since, timeout):
                if namespace is None or event.object.metadata.namespace == namespace:
                    yield event.type, event.object
