"""A batch Job's status as the Job controller's ``JobRunState``, and Node allocatable as queue capacity.

Attempts are ours, not the batch Job's: ``start_job`` writes the attempt number into the annotation
``pilothouse.dev/attempt`` in the same merge patch that unsuspends the Job, so an observation always
says which attempt it is about. ``forget_job`` writes ``pilothouse.dev/forgotten`` = that attempt: the
Job stays visible to ``kubectl`` (with its pods' logs) but the controller no longer sees it.

Mapping (the conditions are the Job controller's, ``Complete``/``Failed`` since 1.0, ``Suspended`` 1.24):

- ``Complete`` True -> Succeeded; ``Failed`` True -> Failed (``DeadlineExceeded`` kept as the reason,
  ``BackoffLimitExceeded`` and the rest become ``Error``);
- suspended with pods still active or terminating -> Terminating; suspended and none -> Stopped;
- unsuspended with active pods -> Running, without -> Starting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pilothouse.api.quantity import parse_quantity
from pilothouse.runtime.protocol import JobRunPhase, JobRunState, WorkerState

ATTEMPT_ANNOTATION = "pilothouse.dev/attempt"
FORGOTTEN_ANNOTATION = "pilothouse.dev/forgotten"
STARTED_ANNOTATION = "pilothouse.dev/started-at"


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def attempt_of(job: dict[str, Any]) -> int | None:
    value = ((job.get("metadata") or {}).get("annotations") or {}).get(ATTEMPT_ANNOTATION)
    return int(value) if value is not None and str(value).isdigit() else None


def is_finished(job: dict[str, Any]) -> bool:
    status = job.get("status") or {}
    return _condition(status, "Complete") is not None or _condition(status, "Failed") is not None


def job_run_state(job: dict[str, Any], uid: str) -> JobRunState | None:
    """None for a Job that was never started (still waiting, suspended) or whose attempt was forgotten."""
    meta = job.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    attempt = attempt_of(job)
    if attempt is None or annotations.get(FORGOTTEN_ANNOTATION) == str(attempt):
        return None
    spec, status = job.get("spec") or {}, job.get("status") or {}
    workers = int(spec.get("parallelism") or 1)
    started = _timestamp(annotations.get(STARTED_ANNOTATION)) or _timestamp(status.get("startTime"))
    finished_at = _timestamp(status.get("completionTime"))
    active, terminating = int(status.get("active") or 0), int(status.get("terminating") or 0)
    phase: JobRunPhase
    reason, message, exit_code = "", "", None
    complete, failed = _condition(status, "Complete"), _condition(status, "Failed")
    if complete is not None:
        phase, reason, exit_code = "Succeeded", "Completed", 0
        finished_at = finished_at or _timestamp(complete.get("lastTransitionTime"))
    elif failed is not None:
        phase = "Failed"
        reason = "DeadlineExceeded" if failed.get("reason") == "DeadlineExceeded" else "Error"
        message = str(failed.get("message") or failed.get("reason") or "")
        exit_code = 1
        finished_at = finished_at or _timestamp(failed.get("lastTransitionTime"))
    elif spec.get("suspend"):
        phase = "Terminating" if active or terminating else "Stopped"
        reason = "Stopped"
    else:
        phase = "Running" if active else "Starting"
    return JobRunState(
        owner_uid=uid,
        attempt=attempt,
        phase=phase,
        workers=tuple(WorkerState(index=i, pid=None, devices=(), exit_code=None) for i in range(workers)),
        started_at=started,
        finished_at=finished_at if phase in ("Succeeded", "Failed") else None,
        reason=reason,
        message=message,
        exit_code=exit_code,
    )


def node_shapes(nodes: list[dict[str, Any]]) -> list[dict[str, int]]:
    """``status.allocatable`` of each schedulable node: accelerators as counts (resource names with a
    ``/``), ``cpu`` in millicores, ``memory`` in bytes. Cordoned nodes (``spec.unschedulable``) are left out."""
    shapes: list[dict[str, int]] = []
    for node in nodes:
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        shape: dict[str, int] = {}
        for resource, amount in ((node.get("status") or {}).get("allocatable") or {}).items():
            value = parse_quantity(str(amount))
            if resource == "cpu":
                shape[resource] = int(value * 1000)
            elif resource == "memory" or "/" in resource:
                shape[resource] = int(value)
        shapes.append(shape)
    return shapes


def node_capacity(nodes: list[dict[str, Any]]) -> dict[str, int]:
    """Sum of ``node_shapes`` over the schedulable nodes."""
    total: dict[str, int] = {}
    for shape in node_shapes(nodes):
        for resource, units in shape.items():
            total[resource] = total.get(resource, 0) + units
    return total
