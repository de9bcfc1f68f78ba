"""The ModelEndpoint plan: revisions roll forward only when the new one is fully ready."""

from __future__ import annotations

from datetime import UTC, datetime

from pilothouse.api.meta import get_condition
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.controllers.modelendpoint_plan import plan
from pilothouse.runtime.protocol import ReplicaPhase, ReplicaState

GATEWAY = "http://127.0.0.1:7421"


def endpoint(generation: int = 1, min_replicas: int = 1, observed: int | None = None) -> ModelEndpoint:
    obj = ModelEndpoint.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "ModelEndpoint",
            "metadata": {
                "name": "iris",
                "namespace": "team-a",
                "uid": "u1",
                "generation": generation,
                "creationTimestamp": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
            },
            "spec": {
                "model": {"uri": "/m/iris.joblib"},
                "autoscaling": {"minReplicas": min_replicas, "maxReplicas": 5},
            },
        }
    )
    obj.status.observedGeneration = observed
    return obj


def replica(n: int, revision: int, phase: ReplicaPhase, reason: str = "", message: str = "") -> ReplicaState:
    return ReplicaState(
        id=f"iris-{revision}-{n}",
        owner_uid="u1",
        revision=revision,
        phase=phase,
        url=f"http://127.0.0.1:{9000 + revision * 10 + n}",
        reason=reason,
        message=message,
    )


def test_new_endpoint_asks_for_replicas_and_is_not_ready() -> None:
    result = plan(endpoint(min_replicas=2), [], GATEWAY)
    assert result.workload.replicas == 2
    assert result.workload.revision == 1
    assert result.workload.model_name == "iris"
    ready = get_condition(result.status.conditions, "Ready")
    assert ready is not None and ready.status == "False" and ready.reason == "ReplicasStarting"
    assert result.status.url == f"{GATEWAY}/team-a/iris"
    assert result.upstreams == []
    assert [e.reason for e in result.events] == ["RevisionCreated"]
    assert result.requeue_after is not None


def test_ready_when_all_replicas_of_newest_revision_ready() -> None:
    observed = [replica(1, 1, "Ready"), replica(2, 1, "Ready")]
    result = plan(endpoint(min_replicas=2, observed=1), observed, GATEWAY)
    ready = get_condition(result.status.conditions, "Ready")
    assert ready is not None and ready.status == "True"
    assert result.status.readyReplicas == 2
    assert result.status.revision == 1
    assert result.upstreams == sorted(r.url for r in observed if r.url)
    assert [e.reason for e in result.events] == ["RevisionReady"]
    assert result.requeue_after is None


def test_min_zero_still_runs_one_replica_until_autoscaler_exists() -> None:
    assert plan(endpoint(min_replicas=0), [], GATEWAY).workload.replicas == 1


def test_old_revision_keeps_serving_until_new_one_is_ready() -> None:
    observed = [replica(1, 1, "Ready"), replica(1, 2, "Starting")]
    result = plan(endpoint(generation=2, observed=1), observed, GATEWAY)
    assert result.retire_revisions == []
    assert result.upstreams == [observed[0].url]
    assert result.status.revision == 1
    ready = get_condition(result.status.conditions, "Ready")
    assert ready is not None and "revision 1 keeps serving" in ready.message


def test_old_revision_retired_once_new_is_ready() -> None:
    observed = [replica(1, 1, "Ready"), replica(1, 2, "Ready")]
    result = plan(endpoint(generation=2, observed=2), observed, GATEWAY)
    assert result.retire_revisions == [1]
    assert result.status.revision == 2


def test_model_load_failure_is_reported_with_its_message() -> None:
    observed = [replica(1, 1, "Failed", "ModelLoadFailed", "file not found: /m/iris.joblib")]
    result = plan(endpoint(observed=1), observed, GATEWAY)
    ready = get_condition(result.status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", "ModelLoadFailed")
    assert "file not found: /m/iris.joblib" in ready.message
    assert [(e.type, e.reason) for e in result.events] == [("Warning", "ModelLoadFailed")]


def test_bad_new_revision_does_not_take_the_endpoint_down() -> None:
    observed = [replica(1, 1, "Ready"), replica(1, 2, "Failed", "ModelLoadFailed", "not a model")]
    result = plan(endpoint(generation=2, observed=1), observed, GATEWAY)
    assert result.retire_revisions == []
    assert result.upstreams == [observed[0].url]
    assert result.status.readyReplicas == 1


def test_plan_is_deterministic_and_status_stable() -> None:
    obj = endpoint(min_replicas=2, observed=1)
    observed = [replica(1, 1, "Ready"), replica(2, 1, "Ready")]
    first = plan(obj, observed, GATEWAY)
    obj.status = first.status
    second = plan(obj, observed, GATEWAY)
    assert second.status.model_dump() == first.status.model_dump()
    assert second.events == []  # nothing new happened: no event noise
