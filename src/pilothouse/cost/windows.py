"""Time windows: the ``[start, end)`` ranges every cost question is asked over.

Users say ``7d``, ``24h``, ``30m`` or ``month`` (the same vocabulary as OpenCost's ``window`` parameter),
so ``parse_window`` turns those words into exact UTC instants. The clock is passed in (``now``): this
module never reads the time itself, which keeps reports reproducible and tests deterministic.

Windows are half-open, ``[start, end)``: consecutive windows tile time with no overlap, so an hour is
never charged twice. Calendar words (``today``, ``month``) use UTC; a "month" is the calendar month in
UTC — the same boundaries budgets use (see ``month_bounds``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pilothouse.cost.money import SECONDS_PER_HOUR, exact


def require_aware(value: datetime, what: str) -> datetime:
    """Naive datetimes are ambiguous (whose midnight?): refuse them and normalise the rest to UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def seconds_between(start: datetime, end: datetime) -> Decimal:
    """Exact seconds from ``start`` to ``end`` (microseconds included) as a ``Decimal``."""
    delta = end - start
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / Decimal(10**6)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open UTC time range ``[start, end)``; unpacks like a tuple: ``start, end = window``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_aware(self.start, "window start"))
        object.__setattr__(self, "end", require_aware(self.end, "window end"))
        if self.end < self.start:
            raise ValueError(
                f"window end {self.end.isoformat()} is before its start {self.start.isoformat()}"
            )

    def __iter__(self) -> Iterator[datetime]:
        yield self.start
        yield self.end

    @property
    def seconds(self) -> Decimal:
        return seconds_between(self.start, self.end)

    @property
    def hours(self) -> Decimal:
        return exact(self.seconds / SECONDS_PER_HOUR)

    def clip(self, start: datetime, end: datetime) -> Window | None:
        """The part of ``[start, end)`` inside this window, or None if they do not overlap."""
        lo, hi = max(self.start, start), min(self.end, end)
        return Window(lo, hi) if lo < hi else None

    def __contains__(self, instant: object) -> bool:
        return isinstance(instant, datetime) and self.start <= instant < self.end


def month_bounds(at: datetime) -> Window:
    """The calendar month (UTC) containing ``at``: from the 1st at 00:00 UTC to the next month's 1st."""
    at = require_aware(at, "at")
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return Window(start, end)


_DURATION = re.compile(r"^(\d+)\s*(m|h|d|w)$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_WORDS = ("today", "yesterday", "week", "lastweek", "month", "lastmonth")


def parse_window(text: str, now: datetime) -> Window:
    """Turn a user's window into ``[start, end)`` in UTC.

    Accepted (case-insensitive):

    * durations ending now: ``30m``, ``24h``, ``7d``, ``2w``;
    * calendar words, UTC: ``today``, ``yesterday``, ``week`` (since Monday 00:00), ``lastweek``,
      ``month`` (since the 1st, to now), ``lastmonth`` (the whole previous month);
    * an explicit range ``START,END`` in ISO 8601, e.g. ``2025-01-01T00:00:00Z,2025-01-08T00:00:00Z``
      (a time without an offset is taken as UTC).

    Raises ``ValueError`` with the accepted forms when the text is none of these.
    """
    now = require_aware(now, "now")
    raw = text.strip()
    word = raw.lower()
    if match := _DURATION.match(word):
        amount = int(match.group(1))
        if amount == 0:
            raise ValueError(f"window {text!r} is empty: use a positive duration such as 24h")
        return Window(now - amount * _UNITS[match.group(2)], now)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if word == "today":
        return Window(midnight, now)
    if word == "yesterday":
        return Window(midnight - timedelta(days=1), midnight)
    monday = midnight - timedelta(days=midnight.weekday())
    if word == "week":
        return Window(monday, now)
    if word == "lastweek":
        return Window(monday - timedelta(weeks=1), monday)
    if word == "month":
        return Window(month_bounds(now).start, now)
    if word == "lastmonth":
        this_month = month_bounds(now).start
        return month_bounds(this_month - timedelta(days=1))
    if "," in raw:
        first, _, second = raw.partition(",")
        start, end = _instant(first, text), _instant(second, text)
        if end <= start:
            raise ValueError(f"window {text!r}: end must be after start")
        return Window(start, end)
    raise ValueError(
        f"cannot parse window {text!r}: use a duration (30m, 24h, 7d, 2w), one of {', '.join(_WORDS)}, "
        "or START,END in ISO 8601"
    )


def _instant(part: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(part.strip())
    except ValueError as exc:
        raise ValueError(f"window {text!r}: {part.strip()!r} is not an ISO 8601 time") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
