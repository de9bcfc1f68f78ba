"""Revisions and progressive rollouts, as a pure function of the endpoint, its replicas and its traffic.

A *revision* is a distinct replica template — model, resources, env, batching — identified by a hash,
exactly as a Deployment's pod-template-hash: changing ``autoscaling`` or ``rollout`` never restarts a
replica, and re-applying an older template (``rollout undo``) brings back that revision's number.

Between the *stable* revision (the one that last took all traffic) and the *latest* one, a strategy
moves replicas and traffic:

- ``rolling``: the latest scales up within ``maxSurge``; the stable scales down as the latest becomes
  ready, keeping at least ``desired - maxUnavailable`` ready; traffic follows ready replicas.
- ``canary``: the latest gets each step's weight for its pause while the stable keeps full capacity;
  the gateway's measurements of the latest are checked against the analysis gates at every step.
- ``blueGreen``: the latest scales to full size with no traffic, then takes 100% at once.

Any strategy rolls back on its own — the latest's replicas stopped, the stable keeping 100% — when the
latest breaches an analysis gate or cannot start (``ModelLoadFailed``, ``CrashLoopBackOff``), and says
why in status and events. A rolled-back template is not retried until the spec changes again.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pilothouse.api.modelendpoint import (
    Analysis,
    ModelEndpoint,
    ModelEndpointStatus,
    RevisionRecord,
    TrafficTarget,
)
from pilothouse.controllers.routes import RevisionStats
from pilothouse.runtime.protocol import ReplicaState

NO_TRAFFIC = RevisionStats(requests=0, errors=0, p99_seconds=None)

MAX_REVISION_HISTORY = 10
FAILURE_REASONS = frozenset({"ModelLoadFailed", "CrashLoopBackOff", "StartFailed", "NotSupported"})


@dataclass(frozen=True)
class RevisionTarget:
    revision: int
    replicas: int
    weight: int


@dataclass(frozen=True)
class RolloutEvent:
    type: str
    reason: str
    message: str


@dataclass
class RolloutPlan:
    targets: list[RevisionTarget]
    """Every revision that has or should have replicas; ``replicas == 0`` means retire it."""
    status: ModelEndpointStatus
    events: list[RolloutEvent] = field(default_factory=list)
    requeue_after: float | None = None


def template_hash(endpoint: ModelEndpoint) -> str:
    spec = endpoint.spec
    template = {
        "model": spec.model.model_dump(mode="json"),
        "resources": spec.resources.model_dump(mode="json"),
        "env": spec.env,
        "batching": spec.batching.model_dump(mode="json") if spec.batching else None,
    }
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def assign_revision(endpoint: ModelEndpoint, now: datetime) -> tuple[int, list[RevisionRecord], bool]:
    """The latest revision number for the current template, the updated history, and whether it is new."""
    status = endpoint.status
    digest = template_hash(endpoint)
    history = list(status.revisions)
    for record in history:
        if record.templateHash == digest:
            return record.revision, history, False
    number = max((r.revision for r in history), default=0) + 1
    history.append(
        RevisionRecord(
            revision=number, generation=endpoint.metadata.generation or 1, templateHash=digest, created=now
        )
    )
    return number, history[-MAX_REVISION_HISTORY:], True


def _counts(observed: list[ReplicaState]) -> tuple[dict[int, int], dict[int, int], dict[int, ReplicaState]]:
    total: dict[int, int] = {}
    ready: dict[int, int] = {}
    failed: dict[int, ReplicaState] = {}
    for replica in observed:
        total[replica.revision] = total.get(replica.revision, 0) + 1
        if replica.ready:
            ready[replica.revision] = ready.get(replica.revision, 0) + 1
        elif replica.reason in FAILURE_REASONS:
            failed.setdefault(replica.revision, replica)
    return total, ready, failed


def _breach(analysis: Analysis | None, new: RevisionStats, stable: RevisionStats) -> str | None:
    """A plain-words reason if the new revision breaches a gate (judged only after ``minRequests``)."""
    if analysis is None or new.requests < analysis.minRequests:
        return None
    rate = new.errors / new.requests
    if rate > analysis.maxErrorRate:
        return f"error rate {rate:.1%} over {new.requests} requests exceeds {analysis.maxErrorRate:.1%}"
    if new.p99_seconds is not None and analysis.maxP99LatencyMs is not None:
        p99_ms = new.p99_seconds * 1000
        if p99_ms > analysis.maxP99LatencyMs:
            return f"p99 latency {p99_ms:.1f} ms exceeds {analysis.maxP99LatencyMs:g} ms"
    if (
        analysis.maxP99LatencyRatio is not None
        and new.p99_seconds is not None
        and stable.p99_seconds
        and new.p99_seconds > analysis.maxP99LatencyRatio * stable.p99_seconds
    ):
        ratio = new.p99_seconds / stable.p99_seconds
        return f"p99 latency {ratio:.2f}x the stable revision's exceeds {analysis.maxP99LatencyRatio:g}x"
    return None


def _weights_by_ready(ready: Mapping[int, int], revisions: list[int]) -> dict[int, int]:
    """Traffic in proportion to ready replicas (largest remainder, so weights sum to 100)."""
    counts = {r: ready.get(r, 0) for r in revisions}
    total = sum(counts.values())
    if total == 0:
        return {revisions[0]: 100} | {r: 0 for r in revisions[1:]}
    raw = {r: 100 * c / total for r, c in counts.items()}
    weights = {r: math.floor(v) for r, v in raw.items()}
    for r in sorted(raw, key=lambda r: raw[r] - weights[r], reverse=True)[: 100 - sum(weights.values())]:
        weights[r] += 1
    return weights


def _seconds_since(then: datetime | None, now: datetime) -> float:
    return (now - then).total_seconds() if then else 0.0


@dataclass
class _Rollout:
    """One reconcile's view of a rollout in progress, shared by the strategy functions."""

    endpoint: ModelEndpoint
    status: ModelEndpointStatus
    events: list[RolloutEvent]
    total: dict[int, int]
    ready: dict[int, int]
    retire: dict[int, int]
    desired: int
    latest: int
    stable: int
    now: datetime

    def finish(
        self, targets: dict[int, tuple[int, int]], phase: str, requeue: float | None = None
    ) -> RolloutPlan:
        """Targets are revision -> (replicas, weight); revisions left out and no longer needed retire."""
        self.status.rolloutPhase = phase  # type: ignore[assignment]
        out = [RevisionTarget(r, n, w) for r, (n, w) in sorted(targets.items())]
        out += [RevisionTarget(r, 0, 0) for r in self.retire if r not in targets]
        self.status.traffic = [
            TrafficTarget(
                revision=t.revision,
                percent=t.weight,
                readyReplicas=self.ready.get(t.revision, 0),
                desiredReplicas=t.replicas,
            )
            for t in out
            if t.replicas or t.weight
        ]
        return RolloutPlan(out, self.status, self.events, requeue)

    def promote(self) -> RolloutPlan:
        previous = self.status.stableRevision
        self.status.stableRevision, self.status.canaryStep, self.status.stepStartedAt = (
            self.latest,
            None,
            None,
        )
        self.events.append(
            RolloutEvent("Normal", "RolloutCompleted", f"revision {self.latest} serves 100% (was {previous})")
        )
        plan = self.finish({self.latest: (self.desired, 100)}, "Completed")
        if previous is not None and all(t.revision != previous for t in plan.targets):
            plan.targets.append(RevisionTarget(previous, 0, 0))
        return plan

    def split_by_ready(self, stable_replicas: int, latest_replicas: int) -> RolloutPlan:
        weights = _weights_by_ready(self.ready, [self.stable, self.latest])
        return self.finish(
            {
                self.stable: (stable_replicas, weights[self.stable]),
                self.latest: (latest_replicas, weights[self.latest]),
            },
            "Progressing",
            1.0,
        )


def _rolling(r: _Rollout) -> RolloutPlan:
    rollout = r.endpoint.spec.rollout
    new_ready = r.ready.get(r.latest, 0)
    old_total = sum(n for rev, n in r.total.items() if rev != r.latest)
    new_target = min(r.desired, max(r.total.get(r.latest, 0), r.desired + rollout.maxSurge - old_total))
    old_target = min(r.total.get(r.stable, 0), max(0, r.desired - rollout.maxUnavailable - new_ready))
    if new_ready >= r.desired and old_target == 0:
        return r.promote()
    return r.split_by_ready(old_target, new_target)


def _blue_green(r: _Rollout) -> RolloutPlan:
    if r.ready.get(r.latest, 0) >= r.desired:
        return r.promote()
    return r.finish({r.stable: (r.desired, 100), r.latest: (r.desired, 0)}, "Progressing", 1.0)


def _canary(r: _Rollout) -> RolloutPlan:
    steps = r.endpoint.spec.rollout.steps
    status = r.status
    new_ready = r.ready.get(r.latest, 0)
    step = status.canaryStep
    if step is None:
        step = 0
        status.canaryStep, status.stepStartedAt = 0, r.now
        first = f"step 1/{len(steps)}: {steps[0].weight}% to revision {r.latest}"
        r.events.append(RolloutEvent("Normal", "CanaryStep", first))
    if step >= len(steps):  # every step passed: the latest scales to full size, then takes everything
        return r.promote() if new_ready >= r.desired else r.split_by_ready(r.desired, r.desired)
    weight = steps[step].weight
    target = max(1, math.ceil(r.desired * weight / 100))
    if new_ready < target:
        status.stepStartedAt = r.now  # a step's pause counts from when its replicas are ready
    elif _seconds_since(status.stepStartedAt, r.now) >= steps[step].pauseSeconds:
        status.canaryStep, status.stepStartedAt = step + 1, r.now
        if step + 1 == len(steps):
            r.events.append(
                RolloutEvent("Normal", "CanaryPromoted", f"all steps passed: promoting revision {r.latest}")
            )
            return r.split_by_ready(r.desired, r.desired)
        weight = steps[step + 1].weight
        target = max(1, math.ceil(r.desired * weight / 100))
        message = f"step {step + 2}/{len(steps)}: {weight}% to revision {r.latest}"
        r.events.append(RolloutEvent("Normal", "CanaryStep", message))
    share = weight if new_ready else 0
    return r.finish({r.stable: (r.desired, 100 - share), r.latest: (target, share)}, "Progressing", 1.0)


STRATEGIES: dict[str, Callable[[_Rollout], RolloutPlan]] = {
    "rolling": _rolling,
    "blueGreen": _blue_green,
    "canary": _canary,
}


def plan_rollout(
    endpoint: ModelEndpoint,
    observed: list[ReplicaState],
    desired: int,
    now: datetime,
    stats: Mapping[int, RevisionStats],
) -> RolloutPlan:
    """Decide replicas and traffic per revision for this moment of the rollout."""
    rollout = endpoint.spec.rollout
    status = endpoint.status.model_copy(deep=True)
    latest, history, is_new = assign_revision(endpoint, now)
    status.revisions, status.latestRevision = history, latest
    total, ready, failed = _counts(observed)
    stable = status.stableRevision
    events: list[RolloutEvent] = []
    if is_new:
        events.append(
            RolloutEvent("Normal", "RevisionCreated", f"revision {latest} ({template_hash(endpoint)})")
        )
    running = set(total) | ({stable} if stable is not None else set())
    retire = {rev: 0 for rev in sorted(running) if rev not in (latest, stable)}
    r = _Rollout(endpoint, status, events, total, ready, retire, desired, latest, stable or latest, now)

    if stable is None or stable == latest:  # first deployment, or nothing to roll out
        if ready.get(latest, 0) >= desired and latest not in failed:
            if stable != latest:
                events.append(RolloutEvent("Normal", "RolloutCompleted", f"revision {latest} serves 100%"))
            status.stableRevision, status.canaryStep, status.stepStartedAt = latest, None, None
            return r.finish({latest: (desired, 100)}, "Completed")
        return r.finish({latest: (desired, 100)}, "Degraded" if latest in failed else "Progressing", 5.0)

    if status.rolloutPhase == "RolledBack" and not is_new:
        return r.finish({stable: (desired, 100), latest: (0, 0)}, "RolledBack")
    if is_new:
        status.canaryStep, status.stepStartedAt = None, now
    reason = None
    if latest in failed:
        replica = failed[latest]
        reason = f"revision {latest} cannot start: {replica.reason}: {replica.message}".rstrip(": ")
    elif rollout.strategy == "canary" and status.canaryStep is not None:
        reason = _breach(rollout.analysis, stats.get(latest, NO_TRAFFIC), stats.get(stable, NO_TRAFFIC))
    if reason is not None:
        events.append(
            RolloutEvent("Warning", "RolledBack", f"{reason}; revision {stable} keeps 100% of traffic")
        )
        status.canaryStep, status.stepStartedAt = None, None
        return r.finish({stable: (desired, 100), latest: (0, 0)}, "RolledBack")
    if rollout.paused:
        held = {t.revision: (t.desiredReplicas, t.percent) for t in endpoint.status.traffic}
        return r.finish(held or {stable: (desired, 100), latest: (0, 0)}, "Paused")
    return STRATEGIES[rollout.strategy](r)
