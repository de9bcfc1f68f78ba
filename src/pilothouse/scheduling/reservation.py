"""Backfill with a reservation (Slurm's rule): when the job at the head of the order cannot start, find
the earliest time it could, hold that for it, and let later jobs start only if they cannot delay it.

Running jobs release their resources at ``started + expected_duration``. Jobs with no expected duration,
and jobs already running past it, are assumed never to end for this purpose (the conservative choice: it
can only make the reservation later and the spare amount smaller). Terminating jobs release now. If the
head cannot be satisfied even then, the start is unknown (``inf``): later jobs may then use only what the
head would not need even after every known release, never "ends before the reservation".
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pilothouse.scheduling.resources import Vec, fits

INF = float("inf")


class HasNeed(Protocol):
    @property
    def need(self) -> Vec: ...


@dataclass
class Reservation:
    job_id: str
    start: float
    """Reserved start on the engine's clock; ``inf`` when it depends on jobs of unknown duration."""
    extra: list[float]
    """What is free at ``start`` beyond the head's need: later jobs may keep this past ``start``."""

    def allows(self, need: Vec, end: float) -> str | None:
        """How a job needing ``need`` until ``end`` may start without delaying the head, else None.
        Consumes from ``extra`` when that is the way."""
        if self.start < INF and end <= self.start:
            return "ends-before"
        if fits(need, self.extra):
            for r, amount in enumerate(need):
                self.extra[r] -= amount
            return "spare"
        return None


def reserve(
    job_id: str,
    need: Vec,
    avail: Sequence[float],
    now: float,
    terminating: Iterable[Vec],
    ends: Sequence[tuple[float, str]],
    running: Mapping[str, HasNeed],
) -> Reservation:
    """``ends``: sorted ``(end, job id)`` of running jobs with a known end; ``running`` has their requests."""
    have = [float(a) for a in avail]
    for held in terminating:
        for r, amount in enumerate(held):
            have[r] += amount
    start = now if fits(need, have) else INF
    if start == INF:
        for end, job in ends[bisect.bisect_right(ends, (now, "\U0010ffff")) :]:
            for r, amount in enumerate(running[job].need):
                have[r] += amount
            if fits(need, have):
                start = end
                break
    extra = [max(0.0, h - n) for h, n in zip(have, need, strict=True)]
    return Reservation(job_id, start, extra)
