"""One contract, two backends: every test here runs against ``SqlStore`` and ``KubeStore``.

The Kubernetes backend runs against the API emulator over real HTTP (``tests/kubernetes/emulator``).
Tests compare resourceVersions only relative to each other: on Kubernetes the counter is shared with
every other object in the cluster (namespaces, events, revisions), so absolute values differ.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent.parent / "kubernetes"))

from emulator import KubernetesApiEmulator
from emulator.crds import install_pilothouse

from kubernetes import client as k8s
from pilothouse.store.kube import KubeStore
from pilothouse.store.protocol import Store
from pilothouse.store.sql import SqlStore


@pytest.fixture(params=["sql", "kube"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sql":
        with SqlStore(tmp_path / "store.db") as sql:
            yield sql
        return
    with KubernetesApiEmulator(bookmark_interval=0.2) as emulator:
        install_pilothouse(emulator)
        with k8s.ApiClient(k8s.Configuration(host=emulator.url)) as api:
            kube = KubeStore(api, watch_poll_interval=0.2)
            yield kube
            kube.close()
        assert emulator.server_errors == []
