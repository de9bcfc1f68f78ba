"""Leader election: two operators with kopf peering, only the higher priority acts, the other takes over.

The emulator serves kopf's own ``ClusterKopfPeering`` CRD (the definition kopf documents in its
``peering.yaml``; the kopf wheel does not ship the file, so ``pilothouse.operator.peering`` restates it,
and ``python -m pilothouse.operator --peering-manifests NAME`` prints it). Both operators run
in-process with ``peering_name`` (what ``python -m pilothouse.operator --peering NAME --priority N``
passes on), each with its own ``ApiClient`` and ``ControllerHost``, so the reconciles of each are counted
separately (``ControllerHost.reconcile_count``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from emulator import KubernetesApiEmulator
from operator_harness import EXAMPLES, RunningOperator, load_documents, wait_for
from test_operator import apply, get_cr, ready_condition

from kubernetes import client as k8s
from pilothouse.operator.peering import peering_crd, peering_object

PEERING = "pilothouse"


@pytest.fixture
def peered(cluster: KubernetesApiEmulator) -> KubernetesApiEmulator:
    cluster.create(peering_crd())  # through the emulator's admission: a valid CRD of Kubernetes 1.33
    cluster.create(peering_object(PEERING))
    return cluster


@pytest.fixture
def clients(emulator: KubernetesApiEmulator) -> Iterator[tuple[k8s.ApiClient, k8s.ApiClient]]:
    with (
        k8s.ApiClient(k8s.Configuration(host=emulator.url)) as a,
        k8s.ApiClient(k8s.Configuration(host=emulator.url)) as b,
    ):
        yield a, b


def peers(cluster: KubernetesApiEmulator) -> dict[str, Any]:
    status: dict[str, Any] = cluster.get("kopf.dev/v1", "clusterkopfpeerings", PEERING).get("status") or {}
    return status


def test_only_the_leader_reconciles_and_the_standby_takes_over(
    peered: KubernetesApiEmulator, clients: tuple[k8s.ApiClient, k8s.ApiClient]
) -> None:
    (endpoint,) = load_documents(EXAMPLES / "kubernetes" / "iris-endpoint.yaml")
    leader = RunningOperator(clients[0], peering_name=PEERING, priority=200)
    standby = RunningOperator(clients[1], peering_name=PEERING, priority=100)
    running: list[RunningOperator] = []
    try:
        running.append(leader.__enter__())
        wait_for(lambda: len(peers(peered)) == 1, what="the leader in the peering object")
        running.append(standby.__enter__())
        wait_for(lambda: len(peers(peered)) == 2, what="both operators in the peering object")
        assert sorted(p["priority"] for p in peers(peered).values()) == [100, 200]

        apply(clients[0], endpoint)
        wait_for(lambda: peered.get("apps/v1", "deployments", "iris-r1", "vision"), what="revision 1")
        wait_for(lambda: leader.host.reconcile_count >= 3, what="the leader's follow-up reconciles")
        assert standby.host.reconcile_count == 0, "the standby acted while the leader was alive"

        running.remove(leader)
        leader.__exit__(None, None, None)  # a clean stop: kopf removes its entry from the peering
        wait_for(lambda: len(peers(peered)) == 1, what="the leader gone from the peering object")
        wait_for(lambda: standby.host.reconcile_count > 0, timeout=20, what="the standby resuming")

        # The new leader does the work now: a Deployment becoming ready makes the endpoint Ready,
        # and a new endpoint gets its revision.
        peered.mark_deployment_ready("vision", "iris-r1")
        wait_for(
            lambda: (
                (c := ready_condition(get_cr(peered, "modelendpoints", "iris", "vision")))
                and c["status"] == "True"
            ),
            what="iris Ready through the standby",
        )
        endpoint["metadata"]["name"] = "iris-two"
        apply(clients[1], endpoint)
        wait_for(lambda: peered.get("apps/v1", "deployments", "iris-two-r1", "vision"), what="iris-two")
    finally:
        for operator in reversed(running):
            operator.__exit__(None, None, None)
