"""The five policies, as rule sets over the one engine, and the pure ``schedule(snapshot)`` entry point.

- ``fair`` (default): per-team queues ordered by priority with aging (a waiting job gains 60 priority
  points per hour, so ordering is ``priority + 60 * hours waited``: low (100) overtakes a fresh normal
  (500) after 6 h 40 min, and nothing waits forever behind a stream of newer work); teams merged so that
  a job within its team's nominal quota goes first, then the team with the lowest weighted dominant
  share of borrowed resources; quotas with borrowing and lending limits; backfill under a reservation
  for the first job that does not fit; reclaim up to fair share and priority preemption within a team.
- ``fifo``: one queue in submission order; stops at the first job that does not fit; capacity only.
- ``fifo-backfill``: ``fifo`` plus the same reservation backfill.
- ``sjf``: shortest expected duration first, passing over what does not fit; no preemption.
- ``las``: Tiresias-style discretised 2D least-attained-service (GPU-seconds): queues at 1, 10 and 100
  GPU-hours, FIFO within a queue, passing over what does not fit; a job blocked in a higher queue
  preempts running jobs that have since fallen to a lower queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pilothouse.scheduling.engine import Engine, Rules
from pilothouse.scheduling.snapshot import Decisions, Policy, Snapshot

RULES: dict[str, Rules] = {
    "fair": Rules(
        "fair", order="priority", per_team=True, quotas=True, blocking="reserve", preemption="fair"
    ),
    "fifo": Rules("fifo", order="fifo", blocking="strict"),
    "fifo-backfill": Rules("fifo-backfill", order="fifo", blocking="reserve"),
    "sjf": Rules("sjf", order="sjf", blocking="skip"),
    "las": Rules("las", order="las", blocking="skip", preemption="las"),
}
DEFAULT_POLICY = "fair"


def engine_for(rules: Rules, snapshot: Snapshot) -> Engine:
    """A fresh engine holding exactly the snapshot (input order does not matter; nothing is mutated)."""
    resources = {name for job in snapshot.running for name in job.request.per_worker}
    resources |= {name for job in snapshot.pending for name in job.per_worker}
    teams = {
        key: spec if spec.name == key else replace(spec, name=key) for key, spec in snapshot.teams.items()
    }
    engine = Engine(rules, snapshot.capacity, teams, resources, snapshot.nodes)
    for running in sorted(snapshot.running, key=lambda job: job.request.id):
        engine.add_running(running)
    for pending in sorted(snapshot.pending, key=lambda job: (job.submitted, job.id)):
        engine.submit(pending)
    for job_id in sorted(snapshot.nominated):
        engine.nominate(job_id, list(snapshot.nominated[job_id]))
    return engine


class RulePolicy:
    """A policy is its rules; ``schedule`` is one engine cycle over a copy of the snapshot."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.name = rules.name

    def schedule(self, snapshot: Snapshot) -> Decisions:
        return engine_for(self.rules, snapshot).cycle(snapshot.now, explain=True)


def _factory(name: str) -> Callable[[], Policy]:
    return lambda: RulePolicy(RULES[name])


POLICIES: dict[str, Callable[[], Policy]] = {name: _factory(name) for name in RULES}


def make_policy(name: str) -> Policy:
    if name not in POLICIES:
        raise ValueError(f"unknown scheduling policy {name!r} (known: {', '.join(POLICIES)})")
    return POLICIES[name]()


def schedule(snapshot: Snapshot, policy: str = DEFAULT_POLICY) -> Decisions:
    return make_policy(policy).schedule(snapshot)


def fair_shares(snapshot: Snapshot) -> dict[str, dict[str, float]]:
    """Each team's fair share of each quota-managed resource right now (what Team status shows)."""
    return engine_for(RULES["fair"], snapshot).fair_shares()
