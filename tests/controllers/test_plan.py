"""The ModelEndpoint plan: conditions, URL, workloads per revision (with their own templates), routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pilothouse.api.meta import get_condition
from pilothouse.api.modelendpoint import ModelEndpoint, ModelEndpointSpec
from pilothouse.controllers.modelendpoint_plan import Plan, plan
from pilothouse.runtime.protocol import ReplicaPhase, ReplicaState

GATEWAY = "http://127.0.0.1:7421"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def endpoint(
    uri: str = "/m/iris.joblib", generation: int = 1, min_replicas: int = 1, **spec: Any
) -> ModelEndpoint:
    return ModelEndpoint.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "ModelEndpoint",
            "metadata": {"name": "iris", "namespace": "team-a", "uid": "u1", "generation": generation},
            "spec": {
                "model": {"uri": uri},
                "autoscaling": {"minReplicas": min_replicas, "maxReplicas": 5},
                **spec,
            },
        }
    )


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


def run(obj: ModelEndpoint, observed: list[ReplicaState], **kwargs: Any) -> Plan:
    result = plan(obj, observed, GATEWAY, now=NOW, **kwargs)
    obj.status = result.status
    return result


def condition(result: Plan, kind: str = "Ready") -> tuple[str, str, str]:
    found = get_condition(result.status.conditions, kind)
    assert found is not None
    return found.status, found.reason, found.message


def test_new_endpoint_asks_for_replicas_and_is_not_ready() -> None:
    result = run(endpoint(min_replicas=2), [])
    (workload,) = result.workloads
    assert (workload.replicas, workload.revision, workload.model_name) == (2, 1, "iris")
    assert condition(result)[:2] == ("False", "ReplicasStarting")
    assert condition(result, "Available")[0] == "False"
    assert result.status.url == f"{GATEWAY}/team-a/iris"
    assert [(r.revision, r.weight, r.upstreams) for r in result.routes] == [(1, 100, ())]
    assert result.hold_when_empty, "the first requests wait for the first replica instead of failing"
    assert [e.reason for e in result.events] == ["RevisionCreated"]
    assert result.requeue_after is not None


def test_ready_when_every_replica_of_the_revision_is_ready() -> None:
    obj = endpoint(min_replicas=2)
    run(obj, [])
    observed = [replica(1, 1, "Ready"), replica(2, 1, "Ready")]
    result = run(obj, observed)
    assert condition(result) == ("True", "ReplicasReady", "2/2 replicas of revision 1 ready")
    assert (result.status.readyReplicas, result.status.desiredReplicas, result.status.revision) == (2, 2, 1)
    assert result.routes[0].upstreams == tuple(sorted(r.url for r in observed if r.url))
    assert [e.reason for e in result.events] == ["RolloutCompleted"]
    again = run(obj, observed)
    assert again.events == [], "nothing new happened: no event noise"
    assert again.status.model_dump() == result.status.model_dump()


def test_desired_comes_from_the_autoscaler_and_zero_is_scaled_to_zero() -> None:
    obj = endpoint(min_replicas=0)
    assert run(obj, []).workloads[0].replicas == 1, "without an autoscaler: the floor, at least one"
    run(obj, [replica(1, 1, "Ready")], desired=1)
    idle = run(obj, [], desired=0)
    assert [(w.revision, w.replicas) for w in idle.workloads] == [(1, 0)]
    assert idle.retire_revisions == [], "scaled to zero is not retired: it keeps its traffic share"
    assert condition(idle)[:2] == ("True", "ScaledToZero")
    assert idle.hold_when_empty


def test_model_load_failure_is_reported_with_its_message() -> None:
    observed = [replica(1, 1, "Failed", "ModelLoadFailed", "file not found: /m/iris.joblib")]
    result = run(endpoint(), observed)
    assert condition(result) == ("False", "ModelLoadFailed", "file not found: /m/iris.joblib")
    assert [(e.type, e.reason) for e in result.events] == [
        ("Normal", "RevisionCreated"),
        ("Warning", "ModelLoadFailed"),
    ]


def test_older_revisions_run_with_their_own_template_and_batching_reaches_the_env() -> None:
    v1 = endpoint(uri="/m/v1.joblib")
    run(v1, [])
    run(v1, [replica(1, 1, "Ready")])
    v2 = endpoint(uri="/m/v2.joblib", generation=2, batching={"maxBatchSize": 16, "maxLatencyMs": 2})
    v2.status = v1.status
    result = run(
        v2,
        [replica(1, 1, "Ready")],
        templates={1: ModelEndpointSpec.model_validate({"model": {"uri": "/m/v1.joblib"}})},
    )
    models = {w.revision: (w.model.uri, w.replicas) for w in result.workloads}
    assert models == {1: ("/m/v1.joblib", 1), 2: ("/m/v2.joblib", 1)}
    new = next(w for w in result.workloads if w.revision == 2)
    assert new.env == {"PILOTHOUSE_MAX_BATCH_SIZE": "16", "PILOTHOUSE_MAX_BATCH_LATENCY_MS": "2"}
    assert condition(result)[1] == "RolloutInProgress"
    assert condition(result, "Available")[0] == "True", "revision 1 keeps serving during the rollout"
