"""GPU job scheduling: a pure, deterministic scheduler core and a trace-driven simulator built on it.

``make_policy(name).schedule(snapshot) -> Decisions`` is the whole interface the queue controller needs;
``fair_shares(snapshot)`` is what Team status shows. The simulator (``sim_*`` modules) drives the same
engine with a real cluster trace.
"""

from pilothouse.scheduling.policies import DEFAULT_POLICY, POLICIES, RULES, fair_shares, make_policy, schedule
from pilothouse.scheduling.snapshot import (
    GPU,
    Admit,
    Decisions,
    Inadmissible,
    JobRequest,
    Policy,
    Preempt,
    Quota,
    ResourceVector,
    RunningJob,
    Snapshot,
    TeamSpec,
    Waiting,
)

__all__ = [
    "DEFAULT_POLICY",
    "GPU",
    "POLICIES",
    "RULES",
    "Admit",
    "Decisions",
    "Inadmissible",
    "JobRequest",
    "Policy",
    "Preempt",
    "Quota",
    "ResourceVector",
    "RunningJob",
    "Snapshot",
    "TeamSpec",
    "Waiting",
    "fair_shares",
    "make_policy",
    "schedule",
]
