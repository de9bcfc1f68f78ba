"""Scaling schedules: time windows, in their own IANA time zone, that override the replica bounds.

A schedule is judged on the *local wall clock* of its time zone, not on a fixed UTC offset, so
"weekdays 08:00-20:00 Europe/Berlin" means 08:00 Berlin time in winter and in summer alike, and on the
day the clocks change the window is simply shorter or longer in real seconds. ``now`` is always an
epoch timestamp passed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names in ``datetime.weekday()`` order, spelt as the API spells them."""

MINUTES_PER_DAY = 24 * 60


_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def _parse_hhmm(value: str, field: str) -> int:
    """``"08:30"`` -> 510 (minutes after local midnight), in the API's strict 24-hour HH:MM form."""
    match = _HHMM.match(value)
    if match is None:
        raise ValueError(f"{field} must be HH:MM (24-hour), got {value!r}")
    return int(match.group(1)) * 60 + int(match.group(2))


def _zone(name: str) -> ZoneInfo:
    """Load a time zone or fail with a message a user can act on (the API does not check the name)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from exc


@dataclass(frozen=True)
class Schedule:
    """A window ``[start, end)`` on ``days`` in ``time_zone`` with its own replica bounds.

    ``days`` are the days on which the window *starts*: a ``fri 22:00-06:00`` window covers Friday
    22:00 to Saturday 06:00. ``end < start`` crosses midnight; ``end == start`` is the whole day.
    ``min_replicas`` / ``max_replicas`` left as ``None`` keep the spec's value. An empty ``days`` never
    matches (the API allows it, so it must mean something harmless).
    """

    start: str
    end: str
    days: tuple[str, ...] = WEEKDAYS
    time_zone: str = "UTC"
    min_replicas: int | None = None
    max_replicas: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        unknown = [d for d in self.days if d not in WEEKDAYS]
        if unknown:
            raise ValueError(f"unknown day(s) {unknown} (use {', '.join(WEEKDAYS)})")
        _parse_hhmm(self.start, "start")
        _parse_hhmm(self.end, "end")
        _zone(self.time_zone)
        if self.min_replicas is not None and self.min_replicas < 0:
            raise ValueError(f"min_replicas must be >= 0, got {self.min_replicas}")
        if self.max_replicas is not None and self.max_replicas < 1:
            raise ValueError(f"max_replicas must be >= 1, got {self.max_replicas}")

    @property
    def label(self) -> str:
        """What reasons and events call this schedule: its name, else its window."""
        return self.name or f"{','.join(self.days)} {self.start}-{self.end} {self.time_zone}"

    def active_at(self, now: float) -> bool:
        """True when the epoch time ``now`` falls inside the window on the zone's local wall clock."""
        local = datetime.fromtimestamp(now, _zone(self.time_zone))
        minute = local.hour * 60 + local.minute
        start = _parse_hhmm(self.start, "start")
        end = _parse_hhmm(self.end, "end")
        today = WEEKDAYS[local.weekday()]
        yesterday = WEEKDAYS[(local - timedelta(days=1)).weekday()]
        if start == end:  # the whole day that starts at `start`
            return (today in self.days and minute >= start) or (yesterday in self.days and minute < start)
        if start < end:
            return today in self.days and start <= minute < end
        # Crosses midnight: the evening part belongs to today, the morning part to yesterday's window.
        return (today in self.days and minute >= start) or (yesterday in self.days and minute < end)


def schedules_in_force(schedules: Iterable[Schedule], now: float) -> tuple[Schedule, ...]:
    """The schedules whose window contains ``now``, in declaration order."""
    return tuple(s for s in schedules if s.active_at(now))


def resolve_bounds(
    spec_min: int, spec_max: int, schedules: Sequence[Schedule], now: float
) -> tuple[int, int, str | None]:
    """``(min, max, name)`` in force at ``now``.

    Rules, in order (all documented in docs/autoscaling.md):

    1. No schedule in force: the spec's bounds, name ``None``.
    2. Several in force: the max of their set ``min_replicas`` and the max of their set ``max_replicas``
       (overlaps are usually "business hours" plus "launch day"; the bigger one should win).
    3. A bound no matching schedule sets keeps the spec's value.
    4. If min > max after that, a bound set by a schedule beats one inherited from the spec
       (a night schedule ``maxReplicas: 2`` caps a spec ``minReplicas: 4`` to 2); if schedules set
       both, the minimum wins (availability before cost).
    """
    active = schedules_in_force(schedules, now)
    if not active:
        return spec_min, spec_max, None
    mins = [s.min_replicas for s in active if s.min_replicas is not None]
    maxes = [s.max_replicas for s in active if s.max_replicas is not None]
    lo = max(mins) if mins else spec_min
    hi = max(maxes) if maxes else spec_max
    if lo > hi:
        if maxes and not mins:
            lo = hi
        else:
            hi = lo
    return lo, hi, " + ".join(s.label for s in active)
