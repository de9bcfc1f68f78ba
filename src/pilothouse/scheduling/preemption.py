"""Choosing victims: the fewest running jobs, in a fixed order, whose release lets one waiting job start.

Three modes share the walk. ``reclaim`` (``fair``): a team below 90% of its fair share takes back
borrowed resources from teams above theirs, never pushing a victim team below 90% of its own share (the
room then goes to the job it was freed for: ``Engine.nominated``), and first from jobs of no team at all
(``Engine.teamless``: entitled to nothing, so anything they hold may be taken back). ``priority``
(``fair``): within one team, a higher-priority job displaces lower-priority ones when the team is at
quota. ``las``: a job with less attained service displaces jobs in a lower LAS queue. Candidates arrive
ranked by the caller (lowest priority, then most recently started, first). A victim is taken only if it
holds something the waiting job is short of, and the choice is all-or-nothing: if the whole list cannot
make room, nobody is preempted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pilothouse.scheduling.resources import amount, fits

if TYPE_CHECKING:
    from pilothouse.scheduling.engine import RunningRec, _Cycle
    from pilothouse.scheduling.queues import PendingJob

EPS = 1e-9


@dataclass(frozen=True)
class Victim:
    job_id: str
    reason: str


def choose_victims(
    cycle: _Cycle,
    job: PendingJob,
    ranked: Sequence[RunningRec],
    pool: list[float],
    mode: str,
    shares: list[list[float]] | None,
    levels: dict[str, int] | None = None,
    own_room: bool = False,
) -> list[Victim] | None:
    """``own_room``: the victims must release all the job needs (it may not count on what is free now)."""
    e = cycle.e
    book = e.book
    names = e.space.names
    quotas = cycle.rules.quotas
    base = [0.0] * len(cycle.avail) if own_room else cycle.avail
    soon = [a + p for a, p in zip(base, pool, strict=True)]
    chosen: list[RunningRec] = []

    def short_of() -> set[int]:
        wanted = {r for r, n in enumerate(job.need) if n > soon[r]}
        if quotas:
            block = book.check(job.team, job.need)
            if block is not None:
                wanted.add(block.resource)
        return wanted

    wanted = short_of()
    for rec in ranked:
        if not wanted:
            break
        if not any(rec.need[r] for r in wanted):
            continue
        if mode == "reclaim":
            assert shares is not None
            own = shares[rec.team]
            usage = book.usage[rec.team]
            if any(
                usage[r] - rec.need[r] < cycle.rules.reclaim_below * own[r] - EPS
                for r in book.managed_idx
                if rec.need[r]
            ):
                continue
        book.change(rec.team, rec.need, -1)
        chosen.append(rec)
        for r, amount_ in enumerate(rec.need):
            soon[r] += amount_
        wanted = short_of()
    if wanted or not chosen:
        for rec in chosen:
            book.change(rec.team, rec.need, +1)
        return None
    cycle.tentative.extend(chosen)
    for r, n in enumerate(job.need):
        # What the job will take beyond what is free now and what its victims release comes out of the
        # terminating pool other waiting jobs may count on.
        from_victims = sum(rec.need[r] for rec in chosen)
        pool[r] -= max(0.0, min(pool[r], n - base[r] - from_victims))
    assert fits(job.need, soon)
    return [Victim(rec.id, _reason(cycle, job, rec, mode, shares, levels, names)) for rec in chosen]


def _reason(
    cycle: _Cycle,
    job: PendingJob,
    rec: RunningRec,
    mode: str,
    shares: list[list[float]] | None,
    levels: dict[str, int] | None,
    names: tuple[str, ...],
) -> str:
    e = cycle.e
    book = e.book
    teams = book.teams
    used = [r for r, n in enumerate(job.need) if n and rec.need[r]] or [0]
    r = e.gpu if e.gpu in used else used[0]
    need = amount(names[r], job.need[r])
    me, them = teams[job.team].name, teams[rec.team].name
    if mode == "reclaim":
        assert shares is not None
        why = (
            f"{them} has no Team, so its jobs hold no quota"
            if rec.team in e.teamless
            else f"team {them} is above its own ({cycle.usage_before[rec.team][r]:g} used, "
            f"fair share {shares[rec.team][r]:.1f})"
        )
        return (
            f"reclaim: team {me} is below its fair share of {names[r]} "
            f"({book.usage[job.team][r]:g} used, fair share {shares[job.team][r]:.1f}) and job {job.id} needs {need}; "
            f"{why}"
        )
    if mode == "priority":
        return (
            f"priority: job {job.id} (priority {job.req.priority}) of team {me} needs {need} "
            f"and the team is at quota; this job has priority {rec.req.priority}"
        )
    assert levels is not None
    return (
        f"las: job {job.id} of team {me} has attained less service (queue {job.key[0]}) "
        f"than this job (queue {levels[rec.id]}) and needs {need}"
    )
