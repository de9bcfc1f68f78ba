"""Schedules: local wall-clock windows in IANA time zones, DST days, midnight crossing, overlaps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pilothouse.autoscaling import Schedule, bounds_at, resolve_bounds, schedules_in_force

from .builders import config

WEEKDAYS_ONLY = ("mon", "tue", "wed", "thu", "fri")


def utc(text: str) -> float:
    """``"2026-03-09 12:00"`` (UTC) as an epoch timestamp."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()


NEW_YORK_OFFICE = Schedule(
    name="office",
    days=WEEKDAYS_ONLY,
    start="08:00",
    end="20:00",
    time_zone="America/New_York",
    min_replicas=4,
)


@pytest.mark.parametrize(
    ("when", "active", "why"),
    [
        ("2026-03-06 12:59", False, "Fri 07:59 EST"),
        ("2026-03-06 13:00", True, "Fri 08:00 EST = 13:00Z"),
        ("2026-03-07 15:00", False, "Saturday"),
        ("2026-03-08 15:00", False, "Sunday, the day DST starts"),
        ("2026-03-09 11:59", False, "Mon 07:59 EDT"),
        ("2026-03-09 12:00", True, "Mon 08:00 EDT = 12:00Z: one UTC hour earlier than last week"),
        ("2026-03-09 23:59", True, "Mon 19:59 EDT"),
        ("2026-03-10 00:00", False, "Mon 20:00 EDT: end is exclusive"),
        ("2026-11-02 12:59", False, "Mon 07:59 EST after DST ends"),
        ("2026-11-02 13:00", True, "Mon 08:00 EST"),
    ],
)
def test_weekday_window_in_a_non_utc_zone_across_dst(when: str, active: bool, why: str) -> None:
    assert NEW_YORK_OFFICE.active_at(utc(when)) is active, why
    lo, hi, name = bounds_at(config(schedules=(NEW_YORK_OFFICE,)), utc(when))
    assert (lo, hi, name) == ((4, 100, "office") if active else (1, 100, None))


BERLIN_SPRING = Schedule(days=("sun",), start="01:00", end="04:00", time_zone="Europe/Berlin", min_replicas=2)
BERLIN_AUTUMN = Schedule(days=("sun",), start="02:00", end="03:00", time_zone="Europe/Berlin", min_replicas=2)


@pytest.mark.parametrize(
    ("schedule", "when", "active", "why"),
    [
        # 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 01:00-04:00 local lasts two real hours.
        (BERLIN_SPRING, "2026-03-28 23:59", False, "00:59 CET"),
        (BERLIN_SPRING, "2026-03-29 00:00", True, "01:00 CET"),
        (BERLIN_SPRING, "2026-03-29 00:59", True, "01:59 CET, the last minute before the jump"),
        (BERLIN_SPRING, "2026-03-29 01:00", True, "03:00 CEST"),
        (BERLIN_SPRING, "2026-03-29 01:59", True, "03:59 CEST"),
        (BERLIN_SPRING, "2026-03-29 02:00", False, "04:00 CEST"),
        # 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:00-03:00 local happens twice.
        (BERLIN_AUTUMN, "2026-10-24 23:59", False, "01:59 CEST"),
        (BERLIN_AUTUMN, "2026-10-25 00:00", True, "02:00 CEST, first time"),
        (BERLIN_AUTUMN, "2026-10-25 00:59", True, "02:59 CEST"),
        (BERLIN_AUTUMN, "2026-10-25 01:00", True, "02:00 CET, second time"),
        (BERLIN_AUTUMN, "2026-10-25 01:59", True, "02:59 CET"),
        (BERLIN_AUTUMN, "2026-10-25 02:00", False, "03:00 CET"),
    ],
)
def test_windows_on_the_dst_change_days(schedule: Schedule, when: str, active: bool, why: str) -> None:
    assert schedule.active_at(utc(when)) is active, why


FRIDAY_NIGHT = Schedule(name="batch", days=("fri",), start="22:00", end="06:00", max_replicas=2)


@pytest.mark.parametrize(
    ("when", "active"),
    [
        ("2026-03-06 21:59", False),  # Fri
        ("2026-03-06 22:00", True),
        ("2026-03-06 23:59", True),
        ("2026-03-07 00:00", True),  # Sat morning belongs to Friday's window
        ("2026-03-07 05:59", True),
        ("2026-03-07 06:00", False),
        ("2026-03-07 23:00", False),  # Sat evening: Saturday is not a start day
        ("2026-03-05 23:00", False),  # Thu evening
        ("2026-03-06 05:00", False),  # Fri morning would be Thursday's window
    ],
)
def test_midnight_crossing_window(when: str, active: bool) -> None:
    assert FRIDAY_NIGHT.active_at(utc(when)) is active


def test_start_equal_to_end_is_the_whole_day() -> None:
    monday = Schedule(days=("mon",), start="06:00", end="06:00")
    assert monday.active_at(utc("2026-03-09 06:00"))
    assert monday.active_at(utc("2026-03-10 05:59"))  # Tue morning: still Monday's day
    assert not monday.active_at(utc("2026-03-10 06:00"))
    assert not monday.active_at(utc("2026-03-09 05:59"))


def test_empty_days_never_match() -> None:
    assert not Schedule(days=(), start="00:00", end="00:00").active_at(utc("2026-03-09 12:00"))


@pytest.mark.parametrize(
    ("schedules", "expected"),
    [
        # Two overlapping windows: max of the mins, max of the maxes, both named.
        (
            (
                Schedule(name="a", start="00:00", end="00:00", min_replicas=2, max_replicas=5),
                Schedule(name="b", start="00:00", end="00:00", min_replicas=4, max_replicas=8),
            ),
            (4, 8, "a + b"),
        ),
        # Each bound is combined over the schedules that set it.
        (
            (
                Schedule(name="a", start="00:00", end="00:00", min_replicas=3),
                Schedule(name="b", start="00:00", end="00:00", max_replicas=6),
            ),
            (3, 6, "a + b"),
        ),
        # Schedule min above the spec max: the schedule's explicit min wins, max follows.
        ((Schedule(name="peak", start="00:00", end="00:00", min_replicas=20),), (20, 20, "peak")),
        # Schedule max below the spec min: the schedule's explicit max wins, min follows.
        ((Schedule(name="night", start="00:00", end="00:00", max_replicas=1),), (1, 1, "night")),
        # Schedules conflicting among themselves: the minimum wins.
        (
            (
                Schedule(name="a", start="00:00", end="00:00", min_replicas=7),
                Schedule(name="b", start="00:00", end="00:00", max_replicas=3),
            ),
            (7, 7, "a + b"),
        ),
        # Unnamed schedules are named by their window; one not in force does not count.
        (
            (
                Schedule(days=("mon",), start="09:00", end="17:00", min_replicas=5),
                Schedule(days=("tue",), start="09:00", end="17:00", min_replicas=9),
            ),
            (5, 10, "mon 09:00-17:00 UTC"),
        ),
    ],
)
def test_overlapping_schedules(schedules: tuple[Schedule, ...], expected: tuple[int, int, str]) -> None:
    monday_noon = utc("2026-03-09 12:00")
    assert resolve_bounds(2, 10, schedules, monday_noon) == expected


def test_schedules_in_force_keeps_declaration_order() -> None:
    a = Schedule(name="a", start="00:00", end="00:00")
    b = Schedule(name="b", days=("sun",), start="00:00", end="00:00")
    c = Schedule(name="c", start="11:00", end="13:00")
    assert schedules_in_force((c, b, a), utc("2026-03-09 12:00")) == (c, a)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"time_zone": "../etc/passwd"}, "unknown time zone"),
        ({"days": ("monday",)}, "unknown day"),
        ({"start": "24:00"}, "HH:MM"),
        ({"end": "7:5"}, "HH:MM"),
        ({"min_replicas": -1}, "min_replicas"),
        ({"max_replicas": 0}, "max_replicas"),
    ],
)
def test_bad_schedules_are_rejected(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"start": "08:00", "end": "20:00", **kwargs}
    with pytest.raises(ValueError, match=message):
        Schedule(**fields)  # type: ignore[arg-type]
