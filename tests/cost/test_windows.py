"""The window parser: durations, calendar words (UTC) and explicit ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from pilothouse.cost import Window, parse_window

# Wednesday 2025-03-12 15:30 UTC
NOW = datetime(2025, 3, 12, 15, 30, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("30m", NOW - timedelta(minutes=30), NOW),
        ("24h", NOW - timedelta(hours=24), NOW),
        ("7d", NOW - timedelta(days=7), NOW),
        (" 7D ", NOW - timedelta(days=7), NOW),
        ("2w", NOW - timedelta(weeks=2), NOW),
        ("today", utc(2025, 3, 12), NOW),
        ("yesterday", utc(2025, 3, 11), utc(2025, 3, 12)),
        ("week", utc(2025, 3, 10), NOW),
        ("lastweek", utc(2025, 3, 3), utc(2025, 3, 10)),
        ("month", utc(2025, 3, 1), NOW),
        ("lastmonth", utc(2025, 2, 1), utc(2025, 3, 1)),
        ("2025-01-01T00:00:00Z,2025-01-08T00:00:00Z", utc(2025, 1, 1), utc(2025, 1, 8)),
        ("2025-01-01T02:00:00+02:00,2025-01-02", utc(2025, 1, 1), utc(2025, 1, 2)),
    ],
)
def test_parse_window(text: str, start: datetime, end: datetime) -> None:
    window = parse_window(text, NOW)
    assert window == Window(start, end)
    got_start, got_end = window  # unpacks like the (start, end) tuple it stands for
    assert (got_start, got_end) == (start, end)


def test_lastmonth_in_january_is_last_december() -> None:
    assert parse_window("lastmonth", utc(2025, 1, 15)) == Window(utc(2024, 12, 1), utc(2025, 1, 1))


def test_now_in_another_zone_is_normalised_to_utc() -> None:
    # 00:30 on March 1st at UTC+1 is 23:30 on February 28th UTC: "month" is February.
    now = datetime(2025, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert parse_window("month", now) == Window(utc(2025, 2, 1), utc(2025, 2, 28, 23, 30))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7x", "cannot parse window '7x'"),
        ("", "cannot parse window"),
        ("0h", "is empty"),
        ("-1d", "cannot parse window"),
        ("2025-01-08,2025-01-01", "end must be after start"),
        ("yesterday,today", "not an ISO 8601 time"),
    ],
)
def test_bad_windows(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_window(text, NOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_window("7d", datetime(2025, 3, 12))


def test_window_arithmetic() -> None:
    window = Window(utc(2025, 3, 1), utc(2025, 3, 1, 10))
    assert window.hours == Decimal(10)
    assert window.clip(utc(2025, 2, 28), utc(2025, 3, 1, 4)) == Window(utc(2025, 3, 1), utc(2025, 3, 1, 4))
    assert window.clip(utc(2025, 3, 1, 10), utc(2025, 3, 2)) is None  # half-open: touching is not overlapping
    assert utc(2025, 3, 1) in window and utc(2025, 3, 1, 10) not in window
    with pytest.raises(ValueError, match="before its start"):
        Window(utc(2025, 3, 2), utc(2025, 3, 1))
