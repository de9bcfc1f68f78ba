"""``KubernetesRuntime`` against the emulator: revisions, replica states, scale-down, removal, jobs, capacity."""

from __future__ import annotations

import threading
from typing import Any

from emulator import KubernetesApiEmulator
from operator_harness import EXAMPLES, load_documents, wait_for

from kubernetes import client as k8s
from pilothouse.api.job import Job
from pilothouse.api.meta import GROUP, VERSION
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.runtime.kubernetes.builders.endpoint import workload_for
from pilothouse.runtime.kubernetes.runtime import KubernetesRuntime
from pilothouse.runtime.protocol import JobRun, OwnerRef


def _endpoint(api_client: k8s.ApiClient) -> ModelEndpoint:
    (doc,) = load_documents(EXAMPLES / "kubernetes" / "iris-endpoint.yaml")
    created = k8s.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, "vision", "modelendpoints", doc
    )
    doc["metadata"].update(uid=created["metadata"]["uid"], generation=1)
    return ModelEndpoint.model_validate(doc)


def test_revision_lifecycle(cluster: KubernetesApiEmulator, api_client: k8s.ApiClient) -> None:
    runtime = KubernetesRuntime(api_client)
    endpoint = _endpoint(api_client)
    uid = endpoint.metadata.uid
    assert uid
    changed: list[str] = []
    seen = threading.Event()
    runtime.on_change(lambda owner: (changed.append(owner), seen.set()))
    runtime.ensure(workload_for(endpoint, revision=1, replicas=3))
    runtime.ensure(workload_for(endpoint, revision=1, replicas=3))  # idempotent: no second write
    assert [r.phase for r in runtime.observe(uid)] == ["Starting"] * 3
    assert runtime.owners() == {uid}

    cluster.mark_deployment_ready("vision", "iris-r1")
    states = runtime.observe(uid)
    assert [r.phase for r in states] == ["Ready"] * 3
    assert [r.url for r in states] == [None, None, "http://iris-r1.vision.svc.cluster.local:80"]
    wait_for(lambda: seen.is_set() and uid in changed, what="on_change")

    runtime.stop_replicas(uid, [states[0].id])
    assert cluster.get("apps/v1", "deployments", "iris-r1", "vision")["spec"]["replicas"] == 2

    runtime.remove(uid, revision=1)
    runtime.remove(uid, revision=1)  # already gone is success
    assert runtime.observe(uid) == []
    runtime.close()


def test_admit_rejects_local_files(api_client: k8s.ApiClient) -> None:
    runtime = KubernetesRuntime(api_client)
    (doc,) = load_documents(EXAMPLES / "iris" / "endpoint.yaml")
    endpoint = ModelEndpoint.model_validate(doc)
    (problem,) = runtime.admit(endpoint)
    assert problem.path == "spec.model.uri"


def _job(api_client: k8s.ApiClient) -> Job:
    (doc,) = load_documents(EXAMPLES / "jobs" / "nlp-job.yaml")
    created: dict[str, Any] = k8s.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, "nlp", "jobs", doc
    )
    doc["metadata"].update(uid=created["metadata"]["uid"])
    return Job.model_validate(doc)


def test_job_suspended_then_started_stopped_and_finished(
    cluster: KubernetesApiEmulator, api_client: k8s.ApiClient
) -> None:
    runtime = KubernetesRuntime(api_client)
    job = _job(api_client)
    uid = job.metadata.uid
    assert uid
    runtime.prepare_job(job)
    assert cluster.get("batch/v1", "jobs", "bert", "nlp")["spec"]["suspend"] is True
    assert runtime.observe_job(uid) is None  # queued, never started

    run = JobRun(
        OwnerRef("Job", "nlp", "bert", uid), attempt=1, workers=2, command=["x"], resources=job.spec.resources
    )
    runtime.start_job(run)
    runtime.start_job(run)  # idempotent
    state = runtime.observe_job(uid)
    assert state is not None and (state.attempt, state.phase, len(state.workers)) == (1, "Starting", 2)

    runtime.stop_job(uid, 5)
    state = runtime.observe_job(uid)
    assert state is not None and state.phase == "Stopped"
    runtime.forget_job(uid)
    assert runtime.observe_job(uid) is None and runtime.job_owners() == set()

    runtime.start_job(JobRun(run.owner, attempt=2, workers=2, command=["x"], resources=job.spec.resources))
    cluster.mark_job_succeeded("nlp", "bert")
    state = runtime.observe_job(uid)
    assert state is not None and (state.attempt, state.phase, state.exit_code) == (2, "Succeeded", 0)


def test_capacity_sums_node_allocatable(cluster: KubernetesApiEmulator, api_client: k8s.ApiClient) -> None:
    from test_operator import gpu_nodes

    assert KubernetesRuntime(api_client).capacity() == {}
    gpu_nodes(cluster, 2, 4)
    assert KubernetesRuntime(api_client).capacity() == {
        "cpu": 128_000,
        "memory": 2 * 512 * 2**30,
        "nvidia.com/gpu": 8,
    }
    # One worker runs on one node: the queue also gets each node's amounts ("pods" is not a resource).
    # A queue pass asks for both; one listing of the Nodes answers both (a second GET would hit the fault).
    runtime = KubernetesRuntime(api_client)
    assert runtime.capacity()["nvidia.com/gpu"] == 8
    second_list = cluster.fail("GET", r"/api/v1/nodes", status=503)
    assert runtime.nodes() == [{"cpu": 64_000, "memory": 512 * 2**30, "nvidia.com/gpu": 4}] * 2
    assert second_list.hits == 0
