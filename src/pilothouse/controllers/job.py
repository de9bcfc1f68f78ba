"""The Job reconciler: per-job sync with the runtime, and the queue pass behind one well-known key.

Every job key runs ``plan_job`` (pure) and applies it: start the admitted attempt, stop a preempted one,
forget a finished one, record the outcome. Whenever a job takes or gives back resources — or a job or
Team appears, changes or goes — the single ``QUEUE_KEY`` is enqueued; the work queue coalesces bursts of
those into one queue pass. The pass's own status writes do not enqueue it again, so it cannot feed
itself; a periodic resync refreshes ETAs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from pilothouse.api.event import ObjectReference
from pilothouse.api.job import Job
from pilothouse.controllers.job_plan import JobEvent, JobPlan, plan_job, with_condition
from pilothouse.controllers.manager import ObjectKey, Result
from pilothouse.controllers.queue import QueuePass
from pilothouse.runtime.protocol import InsufficientResources, JobRun, JobRuntime, OwnerRef
from pilothouse.store.protocol import NotFound, Store

log = logging.getLogger(__name__)

QUEUE_KEY = ObjectKey("Job", "", "__queue__")
DELETED_JOB_GRACE_SECONDS = 5.0
QUEUE_RETRY_SECONDS = 0.05
"""How soon the queue pass runs again after one of its writes met a concurrent change."""


class JobReconciler:
    kind = "Job"

    def __init__(
        self, store: Store, jobs: JobRuntime, queue: QueuePass, enqueue: Callable[[ObjectKey], None]
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.queue = queue
        self.enqueue = enqueue
        self._uids: dict[ObjectKey, str] = {}
        self._seen_generation: dict[ObjectKey, int | None] = {}
        self._lock = threading.Lock()

    def key_for_uid(self, uid: str) -> ObjectKey | None:
        with self._lock:
            return next((k for k, u in self._uids.items() if u == uid), None)

    def reconcile(self, key: ObjectKey) -> Result:
        if key == QUEUE_KEY:
            if self.queue.run():  # a decision lost to a concurrent write: decide again now, not at resync
                return Result(requeue_after=QUEUE_RETRY_SECONDS)
            return Result()
        try:
            job = self.store.get(self.kind, key.namespace, key.name)
        except NotFound:
            self._forget(key)
            return Result()
        assert isinstance(job, Job) and job.metadata.uid is not None
        with self._lock:
            new = self._seen_generation.get(key, -1) != job.metadata.generation
            self._uids[key] = job.metadata.uid
            self._seen_generation[key] = job.metadata.generation
        if new:
            self.enqueue(QUEUE_KEY)  # a new or changed job: the queue must consider it
        plan = plan_job(job, self.jobs.observe_job(job.metadata.uid), datetime.now(UTC))
        self._apply(job, plan)
        return Result()

    def _apply(self, job: Job, plan: JobPlan) -> None:
        uid = job.metadata.uid
        assert uid is not None
        if plan.action == "start":
            try:
                self.jobs.start_job(self._run(job))
            except InsufficientResources as exc:
                plan.status.phase, plan.status.reason, plan.status.message = (
                    "Pending",
                    "InsufficientResources",
                    str(exc),
                )
                plan.status.attempts -= 1
                plan.resources_changed = True
            else:
                state = self.jobs.observe_job(uid)
                plan.status.phase, plan.status.startTime = "Running", datetime.now(UTC)
                plan.status.devices = [",".join(w.devices) for w in state.workers] if state else []
                plan.events.append(self._started_event(job, plan))
        elif plan.action == "stop":
            self.jobs.stop_job(uid, float(job.spec.preemptionGracePeriodSeconds))
        elif plan.action == "forget":
            self.jobs.forget_job(uid)
        status = with_condition(plan.status, job.metadata.generation)
        if status.model_dump(mode="json") != job.status.model_dump(mode="json"):
            job.status = status
            self.store.update_status(job)
        ref = ObjectReference(kind="Job", namespace=job.metadata.namespace, name=job.metadata.name, uid=uid)
        for event in plan.events:
            self.store.record_event(ref, event.type, event.reason, event.message)
        if plan.resources_changed:
            self.enqueue(QUEUE_KEY)

    @staticmethod
    def _started_event(job: Job, plan: JobPlan) -> JobEvent:
        held = [(i, d) for i, d in enumerate(plan.status.devices) if d]
        devices = "; ".join(f"worker {i} on accelerator(s) {d}" for i, d in held) or "no accelerators"
        return JobEvent(
            "Normal", "Started", f"attempt {plan.status.attempts}: {job.spec.workers} worker(s), {devices}"
        )

    @staticmethod
    def _run(job: Job) -> JobRun:
        assert job.metadata.uid is not None
        return JobRun(
            owner=OwnerRef("Job", job.metadata.namespace, job.metadata.name, job.metadata.uid),
            attempt=job.status.attempts,
            workers=job.spec.workers,
            command=list(job.spec.command or []),
            image=job.spec.image,
            resources=job.spec.resources,
            env=dict(job.spec.env),
            working_dir=job.spec.workingDir,
            active_deadline_seconds=job.spec.activeDeadlineSeconds,
        )

    def _forget(self, key: ObjectKey) -> None:
        with self._lock:
            uid = self._uids.pop(key, None)
            self._seen_generation.pop(key, None)
        if uid is not None:
            self._collect(uid)
        self.enqueue(QUEUE_KEY)

    def _collect(self, uid: str) -> None:
        """A deleted job (cancel): stop its workers, and forget the attempt once they are gone."""
        state = self.jobs.observe_job(uid)
        if state is None:
            return
        if state.phase in ("Starting", "Running"):
            self.jobs.stop_job(uid, DELETED_JOB_GRACE_SECONDS)
        elif state.phase != "Terminating":
            self.jobs.forget_job(uid)

    def resync(self, live_keys: set[ObjectKey]) -> None:
        candidates = self.jobs.job_owners()
        live_uids = {j.metadata.uid for j in self.store.list(self.kind).items}
        for orphan in candidates - live_uids:
            self._collect(orphan)
        self.enqueue(QUEUE_KEY)  # refresh ETAs and positions


class TeamReconciler:
    """Teams have no runtime side here (on Kubernetes they become namespaces and quotas): any change to
    a Team just means the queue must be decided again."""

    kind = "Team"

    def __init__(self, enqueue: Callable[[ObjectKey], None]) -> None:
        self.enqueue = enqueue

    def reconcile(self, key: ObjectKey) -> Result:
        self.enqueue(QUEUE_KEY)
        return Result()

    def resync(self, live_keys: set[ObjectKey]) -> None:
        return None
