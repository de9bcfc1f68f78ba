"""The queue pass: one scheduling decision over every Team and Job, persisted into their statuses.

It only *decides* (``Admitted``, ``Preempting``, or why and how long a job waits) and never touches
processes: the Job reconciler makes the runtime match. So a crash between deciding and starting loses
nothing — the decision is in the store and the next reconcile acts on it. Writes are skipped when
nothing a user would notice changed (ETAs move every second), so the pass does not feed itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from pilothouse.api.event import ObjectReference
from pilothouse.api.job import HOLDING_PHASES, INADMISSIBLE, Job, JobStatus
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.team import ResourceUsage, Team
from pilothouse.controllers.budgets import BUDGET_EXCEEDED, BudgetLedger
from pilothouse.controllers.job_plan import with_condition
from pilothouse.controllers.queue_snapshot import build_snapshot, job_id, resource_vector
from pilothouse.runtime.protocol import JobRuntime, Runtime
from pilothouse.scheduling.policies import fair_shares
from pilothouse.scheduling.snapshot import Decisions, Policy, Snapshot
from pilothouse.store.protocol import Conflict, NotFound, Store

log = logging.getLogger(__name__)

ETA_TOLERANCE_SECONDS = 30.0


def _fmt(resource: str, amount: float) -> str:
    if resource == "cpu":
        return f"{amount / 1000:g}"
    if resource == "memory":
        return f"{amount / 2**30:.1f}Gi"
    return f"{amount:g}"


class QueuePass:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        jobs: JobRuntime,
        policy: Policy,
        clock: Callable[[], float] = time.time,
        budgets: BudgetLedger | None = None,
        on_idle: Callable[[str, float], None] | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.jobs = jobs
        self.policy = policy
        self.clock = clock
        self.budgets = budgets
        """Month-to-date spend (from metering): teams whose budget holds jobs get none admitted."""
        self.on_idle = on_idle
        """Observability hook: (accelerator resource, seconds) idle while admissible jobs waited."""
        self._idle: tuple[float, dict[str, int]] = (clock(), {})
        """Since when, and how many of each accelerator, sat free while jobs waited (after the last pass)."""
        self._idle_series: set[str] = set()
        self.last_decisions: Decisions | None = None
        self.conflicted = False
        """Whether the last pass lost a write to a concurrent change (see ``run``)."""
        self.nominated: dict[str, list[str]] = {}
        """Job id -> the jobs preempted for it, carried into the next passes (``Snapshot.nominated``) so
        the room goes to the job it was freed for. Lost on restart: the job then competes like any other."""

    def _capacity(self) -> tuple[dict[str, int], dict[str, int]]:
        """What jobs may use (the runtime's capacity minus the accelerators model endpoints hold), and what
        the endpoints hold."""
        capacity = dict(self.jobs.capacity())
        by_endpoints: dict[str, int] = {}
        for endpoint in self.store.list("ModelEndpoint").items:
            assert isinstance(endpoint, ModelEndpoint) and endpoint.metadata.uid
            held = sum(len(r.devices) for r in self.runtime.observe(endpoint.metadata.uid))
            for resource in endpoint.spec.resources.accelerators:
                capacity[resource] = max(0, capacity.get(resource, 0) - held)
                if held:
                    by_endpoints[resource] = by_endpoints.get(resource, 0) + held
        return capacity, by_endpoints

    def run(self) -> bool:
        """One pass; True when a decision (or a Team's usage) could not be written because the object
        changed meanwhile (a job's own reconciler, or metering, wrote its status): the caller should run
        the pass again soon, since nothing else will (the pass's own writes do not enqueue it)."""
        self.conflicted = False
        now = self.clock()
        teams = [t for t in self.store.list("Team").items if isinstance(t, Team)]
        jobs = [j for j in self.store.list("Job").items if isinstance(j, Job)]
        when = datetime.fromtimestamp(now, UTC)
        held = self.budgets.holding_jobs(teams, when) if self.budgets is not None else {}
        capacity, by_endpoints = self._capacity()
        inputs = build_snapshot(now, capacity, teams, jobs, held, self.jobs.nodes())
        pending = {p.id for p in inputs.snapshot.pending}
        self.nominated = {k: v for k, v in self.nominated.items() if k in pending}
        snapshot = replace(inputs.snapshot, nominated=dict(self.nominated))
        decisions = self.policy.schedule(snapshot)
        self.last_decisions = decisions
        self._account_idle(now, snapshot, decisions)
        for admit in decisions.admit:
            self.nominated.pop(admit.job_id, None)
        for preempt in decisions.preempt:
            self.nominated.setdefault(preempt.for_job, []).append(preempt.job_id)
        by_id = {job_id(j): j for j in jobs}

        for admit in decisions.admit:
            job = by_id[admit.job_id]
            status = job.status.model_copy(deep=True)
            status.phase, status.reason, status.message = "Admitted", "Admitted", admit.reason
            status.attempts += 1
            status.admittedTime, status.queuePosition, status.estimatedStartTime = when, None, None
            self._write(job, status, ("Normal", "Admitted", admit.reason))
        for preempt in decisions.preempt:
            job = by_id[preempt.job_id]
            status = job.status.model_copy(deep=True)
            status.phase, status.reason = "Preempting", "Preempting"
            status.message = f"{preempt.reason} (for {preempt.for_job})"
            self._write(job, status, ("Warning", "Preempting", status.message))
        for waiting in decisions.waiting:
            job = by_id[waiting.job_id]
            eta = datetime.fromtimestamp(waiting.eta, UTC) if waiting.eta is not None else None
            self._write_waiting(job, waiting.position, eta, "Queued", waiting.reason)
        endpoints_hold = "".join(f"; model endpoints hold {n} {r}" for r, n in sorted(by_endpoints.items()))
        for never in decisions.inadmissible:
            message = never.reason + endpoints_hold
            self._write_waiting(
                job=by_id[never.job_id],
                position=None,
                eta=None,
                reason=INADMISSIBLE,
                message=message,
                event=("Warning", INADMISSIBLE, message),
            )
        for job in inputs.without_team:
            reason = f"namespace {job.metadata.namespace!r} has no Team; create a Team of that name to give it quota"
            self._write_waiting(job, None, None, "NoTeam", reason)
        for job in inputs.disallowed_priority:
            message = (
                f"team {job.metadata.namespace} does not allow priority class {job.spec.priorityClassName!r}"
            )
            self._write_waiting(job, None, None, "PriorityClassNotAllowed", message)
        for job, reason in inputs.budget_held:  # cost: over budget, new jobs wait
            self._write_waiting(job, None, None, BUDGET_EXCEEDED, reason)
        self._write_team_status(teams, jobs, inputs.snapshot)
        return self.conflicted

    def _account_idle(self, now: float, snapshot: Snapshot, decisions: Decisions) -> None:
        """Integrate free accelerators over the time admissible jobs waited, piecewise constant between
        passes: every change of what is free or waiting (a job submitted, admitted, finished, preempted)
        runs a pass, and the resync bounds the rest. Inadmissible jobs do not count as waiting work; GPUs
        model endpoints hold are not free."""
        since, free = self._idle
        if self.on_idle is not None:
            for resource in sorted(r for r in snapshot.capacity if "/" in r and r not in self._idle_series):
                self.on_idle(resource, 0.0)  # the series exists from the first pass, so rate() is defined
                self._idle_series.add(resource)
        if self.on_idle is not None and now > since:
            for resource, count in sorted(free.items()):
                if count > 0:
                    self.on_idle(resource, count * (now - since))
        if not decisions.waiting:
            self._idle = (now, {})
            return
        admitted = {a.job_id for a in decisions.admit}
        holding = [r.request for r in snapshot.running] + [p for p in snapshot.pending if p.id in admitted]
        left = {r: n for r, n in snapshot.capacity.items() if "/" in r}
        for request in holding:
            for resource, per_worker in request.per_worker.items():
                if resource in left:
                    left[resource] -= per_worker * request.workers
        self._idle = (now, left)

    def _write_waiting(
        self,
        job: Job,
        position: int | None,
        eta: datetime | None,
        reason: str,
        message: str,
        event: tuple[str, str, str] | None = None,
    ) -> None:
        """Write why ``job`` waits, if a user would notice the change (``event``, if given, is recorded
        with that write only)."""
        old = job.status
        drift = (eta is None) != (old.estimatedStartTime is None) or (
            eta is not None
            and old.estimatedStartTime is not None
            and abs((eta - old.estimatedStartTime).total_seconds()) > ETA_TOLERANCE_SECONDS
        )
        if old.queuePosition == position and old.reason == reason and old.message == message and not drift:
            return
        status = old.model_copy(deep=True)
        status.queuePosition, status.estimatedStartTime, status.reason, status.message = (
            position,
            eta,
            reason,
            message,
        )
        self._write(job, status, event)

    def _write(self, job: Job, status: JobStatus, event: tuple[str, str, str] | None) -> None:
        job.status = with_condition(status, job.metadata.generation)
        try:
            self.store.update_status(job)
        except (Conflict, NotFound):
            log.debug("job %s changed during the queue pass; running the pass again", job_id(job))
            self.conflicted = True
            return
        if event is not None:
            kind, reason, message = event
            ref = ObjectReference(
                kind="Job", namespace=job.metadata.namespace, name=job.metadata.name, uid=job.metadata.uid
            )
            self.store.record_event(ref, "Warning" if kind == "Warning" else "Normal", reason, message)

    def _write_team_status(self, teams: list[Team], jobs: list[Job], snapshot: Snapshot) -> None:
        shares = fair_shares(snapshot)
        for team in teams:
            name = team.metadata.name
            mine = [j for j in jobs if j.metadata.namespace == name]
            used: dict[str, int] = {}
            for job in mine:
                if job.status.phase in HOLDING_PHASES:
                    for resource, amount in job_vector(job).items():
                        used[resource] = used.get(resource, 0) + amount
            spec = snapshot.teams[name]
            resources = {}
            for resource in sorted(set(spec.quotas) | set(used)):
                nominal = spec.quotas[resource].nominal if resource in spec.quotas else 0
                amount = used.get(resource, 0)
                resources[resource] = ResourceUsage(
                    used=_fmt(resource, amount),
                    borrowed=_fmt(resource, max(0, amount - nominal)),
                    fairShare=_fmt(resource, shares.get(name, {}).get(resource, 0.0)),
                )
            status = team.status.model_copy(deep=True)
            status.observedGeneration = team.metadata.generation
            status.resources = resources
            status.runningJobs = sum(j.status.phase in HOLDING_PHASES for j in mine)
            status.pendingJobs = sum(j.status.phase == "Pending" for j in mine)
            if status.model_dump(mode="json") != team.status.model_dump(mode="json"):
                team.status = status
                try:
                    self.store.update_status(team)
                except Conflict:  # metering wrote the Team's spend meanwhile: write usage again soon
                    self.conflicted = True
                except NotFound:
                    continue


def job_vector(job: Job) -> dict[str, int]:
    per_worker = resource_vector(job.spec.resources)
    return {k: v * job.spec.workers for k, v in per_worker.items()}
