"""The Job lifecycle as a pure function: start, finish, retry, deadline, preemption, crash loss."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pilothouse.api.job import Job, JobPhase
from pilothouse.controllers.job_plan import plan_job
from pilothouse.runtime.protocol import JobRunPhase, JobRunState, WorkerState

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def job(phase: JobPhase, attempts: int = 1, failures: int = 0, max_retries: int = 0, **status: Any) -> Job:
    obj = Job.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "Job",
            "metadata": {"name": "train", "namespace": "nlp", "uid": "j1", "generation": 1},
            "spec": {
                "command": ["python", "train.py"],
                "workers": 2,
                "maxRetries": max_retries,
                "resources": {"accelerators": {"nvidia.com/gpu": 1}},
            },
        }
    )
    obj.status.phase = phase
    obj.status.attempts = attempts
    obj.status.failures = failures
    for key, value in status.items():
        setattr(obj.status, key, value)
    return obj


def run(phase: JobRunPhase, attempt: int = 1, reason: str = "", exit_code: int | None = None) -> JobRunState:
    workers = (WorkerState(0, 100, ("0",), exit_code), WorkerState(1, 101, ("1",), exit_code))
    return JobRunState(
        "j1",
        attempt,
        phase,
        workers,
        started_at=NOW.timestamp() - 60,
        finished_at=NOW.timestamp() if phase in ("Succeeded", "Failed", "Stopped") else None,
        reason=reason,
        message=f"worker 1 exited with {exit_code}" if reason == "Error" else "",
        exit_code=exit_code,
    )


def test_admitted_job_is_started() -> None:
    plan = plan_job(job("Admitted"), None, NOW)
    assert plan.action == "start"


def test_admitted_job_already_started_before_a_crash_is_recorded_not_restarted() -> None:
    plan = plan_job(job("Admitted"), run("Running"), NOW)
    assert plan.action == "none"
    assert plan.status.phase == "Running"
    assert plan.status.devices == ["0", "1"]


def test_success_records_completion_and_frees_resources() -> None:
    plan = plan_job(job("Running"), run("Succeeded", exit_code=0), NOW)
    assert (plan.action, plan.status.phase, plan.status.exitCode) == ("forget", "Succeeded", 0)
    assert plan.status.completionTime == NOW
    assert plan.resources_changed
    assert [e.reason for e in plan.events] == ["Completed"]


@pytest.mark.parametrize(
    ("max_retries", "failures", "expected_phase", "expected_reason"),
    [
        (0, 0, "Failed", "Error"),
        (2, 0, "Pending", "Retrying"),
        (2, 1, "Pending", "Retrying"),
        (2, 2, "Failed", "Error"),
    ],
)
def test_failure_retries_until_max_retries(
    max_retries: int, failures: int, expected_phase: str, expected_reason: str
) -> None:
    plan = plan_job(
        job("Running", failures=failures, max_retries=max_retries),
        run("Failed", reason="Error", exit_code=3),
        NOW,
    )
    assert plan.status.phase == expected_phase
    assert plan.status.reason == expected_reason
    assert plan.status.failures == failures + 1
    assert plan.action == "forget"
    assert "exited with 3" in plan.status.message


def test_deadline_is_never_retried() -> None:
    plan = plan_job(
        job("Running", max_retries=5), run("Failed", reason="DeadlineExceeded", exit_code=-9), NOW
    )
    assert (plan.status.phase, plan.status.reason) == ("Failed", "DeadlineExceeded")


def test_preemption_stops_then_requeues_with_retries_kept() -> None:
    preempting = job("Preempting", failures=1, max_retries=1, message="reclaim: team cv below its fair share")
    assert plan_job(preempting, run("Running"), NOW).action == "stop"
    assert plan_job(preempting, run("Terminating"), NOW).action == "none"
    done = plan_job(preempting, run("Stopped", reason="Stopped"), NOW)
    assert (done.action, done.status.phase, done.status.reason) == ("forget", "Pending", "Preempted")
    assert done.status.preemptions == 1
    assert done.status.failures == 1, "a preemption is not a failure"
    assert "reclaim: team cv" in done.status.message


def test_job_that_finished_while_being_preempted_counts_as_finished() -> None:
    plan = plan_job(job("Preempting"), run("Succeeded", exit_code=0), NOW)
    assert plan.status.phase == "Succeeded"


def test_running_job_lost_in_a_crash_is_requeued() -> None:
    plan = plan_job(job("Running"), None, NOW)
    assert (plan.status.phase, plan.status.reason) == ("Pending", "Lost")
    assert plan.resources_changed


def test_pending_job_with_stray_processes_stops_them() -> None:
    assert plan_job(job("Pending"), run("Running"), NOW).action == "stop"
    assert plan_job(job("Pending"), run("Stopped"), NOW).action == "forget"
    assert plan_job(job("Succeeded"), None, NOW).action == "none"
