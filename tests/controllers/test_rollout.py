"""Revisions and rollout strategies as a pure function: each strategy, gates, rollback, pause, undo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.controllers.rollout import (
    RevisionStats,
    RolloutPlan,
    assign_revision,
    plan_rollout,
    template_hash,
)
from pilothouse.runtime.protocol import ReplicaPhase, ReplicaState

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def endpoint(uri: str = "/m/v1.joblib", generation: int = 1, **spec: Any) -> ModelEndpoint:
    return ModelEndpoint.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "ModelEndpoint",
            "metadata": {"name": "iris", "uid": "u1", "generation": generation},
            "spec": {"model": {"uri": uri}, **spec},
        }
    )


def replicas(revision: int, ready: int, starting: int = 0, failed_reason: str = "") -> list[ReplicaState]:
    out = [
        ReplicaState(f"r{revision}-{i}", "u1", revision, "Ready", url=f"http://h/{revision}/{i}")
        for i in range(ready)
    ]
    phase: ReplicaPhase = "Failed" if failed_reason else "Starting"
    out += [
        ReplicaState(f"r{revision}-s{i}", "u1", revision, phase, reason=failed_reason, message="boom")
        for i in range(starting)
    ]
    return out


def targets(plan: RolloutPlan) -> dict[int, tuple[int, int]]:
    return {t.revision: (t.replicas, t.weight) for t in plan.targets}


def settled(
    obj: ModelEndpoint, observed: list[ReplicaState], desired: int = 2, now: datetime = T0
) -> ModelEndpoint:
    """Run one plan and store its status, as the reconciler does."""
    obj.status = plan_rollout(obj, observed, desired, now, {}).status
    return obj


def updated(old: ModelEndpoint, **spec: Any) -> ModelEndpoint:
    new = endpoint(generation=(old.metadata.generation or 1) + 1, **spec)
    new.status = old.status.model_copy(deep=True)
    return new


def test_scaling_and_rollout_settings_do_not_create_revisions() -> None:
    base = endpoint()
    scaled = endpoint(autoscaling={"minReplicas": 3, "maxReplicas": 5}, rollout={"strategy": "canary"})
    assert template_hash(base) == template_hash(scaled)
    assert template_hash(base) != template_hash(endpoint(env={"X": "1"}))
    assert template_hash(base) != template_hash(endpoint(resources={"cpu": "2"}))


def test_first_deployment_completes_when_ready() -> None:
    obj = endpoint()
    first = plan_rollout(obj, [], 2, T0, {})
    assert targets(first) == {1: (2, 100)}
    assert first.status.rolloutPhase == "Progressing"
    assert [e.reason for e in first.events] == ["RevisionCreated"]
    obj.status = first.status
    done = plan_rollout(obj, replicas(1, 2), 2, T0, {})
    assert done.status.rolloutPhase == "Completed" and done.status.stableRevision == 1
    assert [e.reason for e in done.events] == ["RolloutCompleted"]


def test_rolling_update_surges_then_shifts_traffic_by_ready_replicas() -> None:
    v1 = settled(settled(endpoint(), []), replicas(1, 2))
    v2 = updated(v1, model={"uri": "/m/v2.joblib"})
    start = plan_rollout(v2, replicas(1, 2), 2, T0, {})
    assert start.status.latestRevision == 2
    assert targets(start) == {1: (2, 100), 2: (1, 0)}, "maxSurge 1, maxUnavailable 0"
    v2.status = start.status
    half = plan_rollout(v2, replicas(1, 2) + replicas(2, 1), 2, T0, {})
    assert targets(half) == {1: (1, 67), 2: (1, 33)}, "old shrinks first: the surge budget is spent"
    v2.status = half.status
    grow = plan_rollout(v2, replicas(1, 1) + replicas(2, 1), 2, T0, {})
    assert targets(grow) == {1: (1, 50), 2: (2, 50)}, "then the new one grows into the freed budget"
    v2.status = grow.status
    done = plan_rollout(v2, replicas(1, 0) + replicas(2, 2), 2, T0, {})
    assert targets(done) == {1: (0, 0), 2: (2, 100)}
    assert done.status.stableRevision == 2 and done.status.rolloutPhase == "Completed"


def test_canary_steps_wait_for_their_pause_then_promote() -> None:
    canary = {
        "strategy": "canary",
        "steps": [{"weight": 10, "pauseSeconds": 60}, {"weight": 50, "pauseSeconds": 60}],
    }
    v1 = settled(settled(endpoint(rollout=canary), []), replicas(1, 4), desired=4)
    v2 = updated(v1, model={"uri": "/m/v2.joblib"}, rollout=canary)
    step1 = plan_rollout(v2, replicas(1, 4), 4, T0, {})
    assert targets(step1) == {1: (4, 100), 2: (1, 0)}, "no traffic before the canary replica is ready"
    v2.status = step1.status
    ready1 = plan_rollout(v2, replicas(1, 4) + replicas(2, 1), 4, T0 + timedelta(seconds=5), {})
    assert targets(ready1) == {1: (4, 90), 2: (1, 10)}
    v2.status = ready1.status
    held = plan_rollout(v2, replicas(1, 4) + replicas(2, 1), 4, T0 + timedelta(seconds=30), {})
    assert held.status.canaryStep == 0, "the pause has not elapsed"
    step2 = plan_rollout(v2, replicas(1, 4) + replicas(2, 1), 4, T0 + timedelta(seconds=70), {})
    assert step2.status.canaryStep == 1
    assert targets(step2) == {1: (4, 50), 2: (2, 50)}
    v2.status = step2.status
    promote = plan_rollout(v2, replicas(1, 4) + replicas(2, 2), 4, T0 + timedelta(seconds=140), {})
    assert [e.reason for e in promote.events] == ["CanaryPromoted"]
    v2.status = promote.status
    done = plan_rollout(v2, replicas(1, 4) + replicas(2, 4), 4, T0 + timedelta(seconds=150), {})
    assert targets(done) == {1: (0, 0), 2: (4, 100)}
    assert done.status.stableRevision == 2


def _canary_in_progress(analysis: dict[str, Any]) -> ModelEndpoint:
    canary = {"strategy": "canary", "steps": [{"weight": 20, "pauseSeconds": 600}], "analysis": analysis}
    v1 = settled(settled(endpoint(rollout=canary), []), replicas(1, 2))
    v2 = updated(v1, model={"uri": "/m/v2.joblib"}, rollout=canary)
    v2.status = plan_rollout(v2, replicas(1, 2) + replicas(2, 1), 2, T0, {}).status
    return v2


def test_error_rate_gate_rolls_back_with_the_numbers() -> None:
    v2 = _canary_in_progress({"maxErrorRate": 0.05, "minRequests": 20})
    healthy = plan_rollout(
        v2,
        replicas(1, 2) + replicas(2, 1),
        2,
        T0,
        {2: RevisionStats(requests=100, errors=4, p99_seconds=None)},
    )
    assert healthy.status.rolloutPhase == "Progressing"
    too_few = plan_rollout(
        v2,
        replicas(1, 2) + replicas(2, 1),
        2,
        T0,
        {2: RevisionStats(requests=10, errors=10, p99_seconds=None)},
    )
    assert too_few.status.rolloutPhase == "Progressing", "no judgement before minRequests"
    bad = plan_rollout(
        v2,
        replicas(1, 2) + replicas(2, 1),
        2,
        T0,
        {2: RevisionStats(requests=100, errors=9, p99_seconds=None)},
    )
    assert bad.status.rolloutPhase == "RolledBack"
    assert targets(bad) == {1: (2, 100), 2: (0, 0)}
    (event,) = [e for e in bad.events if e.reason == "RolledBack"]
    assert "error rate 9.0% over 100 requests exceeds 5.0%" in event.message
    v2.status = bad.status
    stays = plan_rollout(v2, replicas(1, 2), 2, T0, {})
    assert stays.status.rolloutPhase == "RolledBack" and targets(stays)[2] == (0, 0), "not retried"


def test_latency_gates_absolute_and_relative() -> None:
    absolute = _canary_in_progress({"maxErrorRate": 1, "maxP99LatencyMs": 50, "minRequests": 1})
    slow = plan_rollout(absolute, replicas(1, 2) + replicas(2, 1), 2, T0, {2: RevisionStats(50, 0, 0.080)})
    assert slow.status.rolloutPhase == "RolledBack"
    relative = _canary_in_progress({"maxErrorRate": 1, "maxP99LatencyRatio": 1.5, "minRequests": 1})
    stats = {1: RevisionStats(50, 0, 0.010), 2: RevisionStats(50, 0, 0.014)}
    assert (
        plan_rollout(relative, replicas(1, 2) + replicas(2, 1), 2, T0, stats).status.rolloutPhase
        == "Progressing"
    )
    stats[2] = RevisionStats(50, 0, 0.020)
    assert (
        plan_rollout(relative, replicas(1, 2) + replicas(2, 1), 2, T0, stats).status.rolloutPhase
        == "RolledBack"
    )


def test_new_revision_that_cannot_start_is_rolled_back_for_every_strategy() -> None:
    for strategy in ("rolling", "canary", "blueGreen"):
        v1 = settled(settled(endpoint(rollout={"strategy": strategy}), []), replicas(1, 2))
        v2 = updated(v1, model={"uri": "/m/broken.joblib"}, rollout={"strategy": strategy})
        result = plan_rollout(v2, replicas(1, 2) + replicas(2, 0, 1, "ModelLoadFailed"), 2, T0, {})
        assert result.status.rolloutPhase == "RolledBack", strategy
        assert targets(result)[1] == (2, 100)


def test_blue_green_switches_all_traffic_at_once() -> None:
    v1 = settled(settled(endpoint(rollout={"strategy": "blueGreen"}), []), replicas(1, 2))
    v2 = updated(v1, model={"uri": "/m/v2.joblib"}, rollout={"strategy": "blueGreen"})
    preview = plan_rollout(v2, replicas(1, 2) + replicas(2, 1, 1), 2, T0, {})
    assert targets(preview) == {1: (2, 100), 2: (2, 0)}
    v2.status = preview.status
    switched = plan_rollout(v2, replicas(1, 2) + replicas(2, 2), 2, T0, {})
    assert targets(switched) == {1: (0, 0), 2: (2, 100)}


def test_pause_freezes_the_split() -> None:
    canary = {
        "strategy": "canary",
        "steps": [{"weight": 30, "pauseSeconds": 0}, {"weight": 60, "pauseSeconds": 0}],
    }
    v1 = settled(settled(endpoint(rollout=canary), []), replicas(1, 2))
    v2 = updated(v1, model={"uri": "/m/v2.joblib"}, rollout=canary)
    v2.status = plan_rollout(v2, replicas(1, 2) + replicas(2, 1), 2, T0, {}).status
    frozen = updated(v2, model={"uri": "/m/v2.joblib"}, rollout={**canary, "paused": True})
    before = {t.revision: t.percent for t in v2.status.traffic}
    paused = plan_rollout(frozen, replicas(1, 2) + replicas(2, 1), 2, T0 + timedelta(hours=1), {})
    assert paused.status.rolloutPhase == "Paused"
    assert {t.revision: t.weight for t in paused.targets if t.replicas or t.weight} == before


def test_undo_to_a_previous_template_reuses_its_revision_number() -> None:
    v1 = settled(settled(endpoint(), []), replicas(1, 2))
    v2 = updated(v1, model={"uri": "/m/v2.joblib"})
    v2 = settled(settled(v2, replicas(1, 2) + replicas(2, 1)), replicas(2, 2))
    assert v2.status.stableRevision == 2
    back = updated(v2, model={"uri": "/m/v1.joblib"})
    number, history, is_new = assign_revision(back, T0)
    assert (number, is_new) == (1, False)
    assert [r.revision for r in history] == [1, 2]
