"""Fixtures for the Kubernetes-backend tests: a fresh API emulator per test, clients pointed at it.

The suite runs in importlib mode with only tests/ on sys.path; the emulator package next to this file is
imported by plain name, so this directory is appended (last: it must shadow nothing — in particular
not the official ``kubernetes`` package, which is why this directory has no ``__init__.py``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent))

from emulator import KubernetesApiEmulator
from emulator.crds import install_pilothouse
from operator_harness import KubeTarget

from kubernetes import client as k8s
from pilothouse.runtime.kubernetes.connect import connect
from pilothouse.store.kube import KubeStore

REAL_CLUSTER_ENV = "PILOTHOUSE_TEST_KUBECONFIG"
"""A kubeconfig of a real cluster (with our CRDs installed) for the tests that take ``kube_target``."""


@pytest.fixture
def emulator() -> Iterator[KubernetesApiEmulator]:
    with KubernetesApiEmulator(bookmark_interval=0.2) as server:
        yield server
        assert server.server_errors == [], "the emulator itself failed (answered 500)"


@pytest.fixture
def kubeconfig(emulator: KubernetesApiEmulator, tmp_path: Path) -> Path:
    return emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def api_client(emulator: KubernetesApiEmulator) -> Iterator[k8s.ApiClient]:
    """The official client, configured by injection (never from ``$KUBECONFIG`` at import time)."""
    configuration = k8s.Configuration(host=emulator.url)
    with k8s.ApiClient(configuration) as api:
        yield api


@pytest.fixture
def kube_store(emulator: KubernetesApiEmulator, api_client: k8s.ApiClient) -> Iterator[KubeStore]:
    install_pilothouse(emulator)
    store = KubeStore(api_client, watch_poll_interval=0.2)
    yield store
    store.close()


@pytest.fixture
def cluster(emulator: KubernetesApiEmulator) -> KubernetesApiEmulator:
    """The emulator with our CRDs and the namespaces the operator tests use (system, vision, nlp)."""
    install_pilothouse(emulator)
    for name in ("pilothouse-system", "vision", "nlp"):
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return emulator


@pytest.fixture
def kube_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KubeTarget]:
    """The ``cluster`` emulator by default; with ``$PILOTHOUSE_TEST_KUBECONFIG`` the real cluster of that
    file's current context, where the namespaces ``pilothouse-system``, ``vision`` and ``nlp`` are created
    if missing (and never deleted)."""
    real = os.environ.get(REAL_CLUSTER_ENV)
    if not real:
        emulator: KubernetesApiEmulator = request.getfixturevalue("cluster")
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        yield KubeTarget(kubeconfig, request.getfixturevalue("api_client"), emulator)
        return
    with connect(real, None) as api:
        core = k8s.CoreV1Api(api)
        for name in ("pilothouse-system", "vision", "nlp"):
            try:
                core.create_namespace({"metadata": {"name": name}})
            except k8s.ApiException as exc:
                if exc.status != 409:
                    raise
        yield KubeTarget(Path(real), api, None)
