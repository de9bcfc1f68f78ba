"""The budget evaluator: levels, actions, reasons, projection and month boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from pilothouse.api import ManifestError
from pilothouse.cost import (
    BudgetAction,
    BudgetPolicy,
    PriceBook,
    Window,
    allocate,
    evaluate_budget,
    month_bounds,
    parse_window,
    spend_by_team,
)

from .builders import interval

D = Decimal
# 2025-03-11 00:00 UTC: 10 of March's 31 days have elapsed.
NOW = datetime(2025, 3, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spend", "level", "threshold", "percent"),
    [
        ("0", "ok", None, 0),
        ("199.99", "ok", None, 49),
        ("200", "warning", D("0.5"), 50),
        ("319.99", "warning", D("0.5"), 79),
        ("320", "warning", D("0.8"), 80),
        ("399.99", "warning", D("0.8"), 99),  # 99.9975% reads 99%, never 100%
        ("400", "exceeded", D("1.0"), 100),
        ("412.50", "exceeded", D("1.0"), 103),
    ],
)
def test_levels(spend: str, level: str, threshold: Decimal | None, percent: int) -> None:
    state = evaluate_budget(D(spend), D(400), team="nlp", now=NOW)
    assert (state.level, state.threshold, state.percent) == (level, threshold, percent)
    assert state.notify == (level != "ok")
    assert not state.enforced  # notify only, by default


@pytest.mark.parametrize(
    ("actions", "refuses", "holds", "tail"),
    [
        (["hold-jobs"], False, True, "new jobs are held"),
        (["refuse-endpoints"], True, False, "new endpoints and scale-ups are refused"),
        (
            ["refuse-endpoints", "hold-jobs", "notify"],
            True,
            True,
            "new endpoints and scale-ups are refused and new jobs are held",
        ),
        (["notify"], False, False, "nothing is blocked (notify only)"),
        ([], False, False, "nothing is blocked (notify only)"),
    ],
)
def test_exceeded_with_each_action(
    actions: list[BudgetAction], refuses: bool, holds: bool, tail: str
) -> None:
    state = evaluate_budget(D("412.50"), D(400), team="nlp", now=NOW, actions=actions)
    assert state.level == "exceeded"
    assert (state.refuses_endpoints, state.holds_jobs) == (refuses, holds)
    assert state.reason == f"team nlp has spent $412.50 of its $400.00 monthly budget (103%); {tail}"


def test_actions_are_not_enforced_below_the_limit() -> None:
    state = evaluate_budget(D(350), D(400), team="nlp", now=NOW, actions=["hold-jobs", "refuse-endpoints"])
    assert state.level == "warning"
    assert not state.holds_jobs and not state.refuses_endpoints
    # projection: 350 / (10/31) = 1085.00
    assert state.reason == (
        "team nlp has spent $350.00 of its $400.00 monthly budget (87%), past the 80% warning; "
        "projected month-end spend $1,085.00"
    )


def test_projection_is_linear_in_the_elapsed_month() -> None:
    # 10 of 31 days elapsed: 100 / (10/31) = 310.00
    state = evaluate_budget(D(100), D(400), team="nlp", now=NOW)
    assert state.projected == D("310.00")
    assert state.reason.endswith("projected month-end spend $310.00")
    # at the very start of the month nothing has elapsed: the projection is the spend itself
    start = evaluate_budget(D(5), D(400), team="nlp", now=datetime(2025, 3, 1, tzinfo=UTC))
    assert start.projected == D(5)
    # half of a 30-day month (April 16 00:00 = 15 days in): 100 / 0.5 = 200
    assert evaluate_budget(D(100), D(400), team="x", now=datetime(2025, 4, 16, tzinfo=UTC)).projected == D(
        200
    )


def test_grace_threshold_above_one() -> None:
    state = evaluate_budget(D(420), D(400), team="nlp", now=NOW, thresholds=(0.8, 1.1), actions=["hold-jobs"])
    assert (state.level, state.threshold, state.holds_jobs) == ("warning", D("0.8"), False)
    state = evaluate_budget(D(440), D(400), team="nlp", now=NOW, thresholds=(0.8, 1.1), actions=["hold-jobs"])
    assert state.level == "exceeded" and state.holds_jobs
    assert state.reason == (
        "team nlp has spent $440.00 of its $400.00 monthly budget (110%), past its enforcement "
        "threshold of 110%; new jobs are held"
    )


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (
            datetime(2025, 3, 11, tzinfo=UTC),
            datetime(2025, 3, 1, tzinfo=UTC),
            datetime(2025, 4, 1, tzinfo=UTC),
        ),
        (
            datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2025, 12, 1, tzinfo=UTC),
            datetime(2026, 1, 1, tzinfo=UTC),
        ),
        (
            datetime(2024, 2, 29, 12, tzinfo=UTC),
            datetime(2024, 2, 1, tzinfo=UTC),
            datetime(2024, 3, 1, tzinfo=UTC),
        ),
        # 01:00 on April 1st in UTC+2 is 23:00 on March 31st UTC: still March
        (
            datetime(2025, 4, 1, 1, tzinfo=timezone(timedelta(hours=2))),
            datetime(2025, 3, 1, tzinfo=UTC),
            datetime(2025, 4, 1, tzinfo=UTC),
        ),
        # the first instant of a month belongs to it
        (
            datetime(2025, 4, 1, tzinfo=UTC),
            datetime(2025, 4, 1, tzinfo=UTC),
            datetime(2025, 5, 1, tzinfo=UTC),
        ),
    ],
)
def test_month_boundaries_are_calendar_months_in_utc(now: datetime, start: datetime, end: datetime) -> None:
    assert month_bounds(now) == Window(start, end)
    assert evaluate_budget(D(1), D(10), team="t", now=now).month == Window(start, end)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount": D(0)}, "amount must be above zero"),
        ({"spend": D(-1)}, "spend must not be negative"),
        ({"thresholds": ()}, "thresholds must not be empty"),
        ({"thresholds": (0, 1)}, "above 0"),
        ({"actions": ["shutdown"]}, "unknown action 'shutdown'"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"spend": D(1), "amount": D(10), "team": "t", "now": NOW} | kwargs
    with pytest.raises(ValueError, match=message):
        evaluate_budget(**args)  # type: ignore[arg-type]


def test_policy_from_config_names_the_bad_field() -> None:
    policy = BudgetPolicy.model_validate({"amount": "400", "actions": ["hold-jobs"]})
    assert policy.evaluate(D("412.50"), team="nlp", now=NOW).holds_jobs
    with pytest.raises(ValueError, match="actions") as caught:
        BudgetPolicy.model_validate({"amount": 400, "actions": ["hold-job"]})
    assert "actions.0" in str(caught.value)
    with pytest.raises(ValueError, match="amount"):
        BudgetPolicy.model_validate({"amount": 0})
    assert not isinstance(caught.value, ManifestError)  # pydantic's own error; the server maps it


def test_spend_by_team_from_a_month_to_date_allocation() -> None:
    # Month to date at NOW = 10 days = 240 h. Team nlp ran 1 GPU for the last 48 h: 48 x 0.95 = 45.60
    job = interval(team="nlp", gpus=1, start=192, end=None)
    window = parse_window("month", NOW)
    spend = spend_by_team(allocate([job], PriceBook(), window, NOW))
    assert spend == {"nlp": D("45.60")}
    assert evaluate_budget(spend["nlp"], D(100), team="nlp", now=NOW).level == "ok"
