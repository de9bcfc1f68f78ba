"""Budgets: a team's monthly amount in dollars, how close it is, and what the platform does when it is spent.

The evaluator is a pure function of the month-to-date spend, the budget and the clock, so admission
(refusing a new endpoint, holding a job in the queue), ``describe`` and alerts can all ask the same
question and get the same answer, with the same plain-words ``reason``.

* **Month**: the calendar month in UTC (``month_bounds``); spend resets at 00:00 UTC on the 1st.
* **Levels**: ``ok`` below the lowest threshold; ``warning`` at or past any threshold but the highest;
  ``exceeded`` at or past the highest (by default ``(0.5, 0.8, 1.0)``: warnings at 50% and 80%,
  exceeded at 100% — at exactly the budget, it is spent). A highest threshold above 1.0 (e.g. 1.1)
  gives a grace margin before enforcement.
* **Actions** (only while ``exceeded``): ``refuse-endpoints`` — new endpoints and scale-ups are refused;
  ``hold-jobs`` — new jobs wait in the queue; ``notify`` — nothing is blocked, people are told. Running
  work is never stopped by a budget: the money for it is already committed, and killing a training run
  at 100.1% wastes everything it spent.
* **Projection**: linear, ``spend / elapsed fraction of the month`` (with no time elapsed, the spend
  itself). Early in a month it swings widely; it is a hint, never a trigger.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal, get_args

from pydantic import Field, field_validator

from pilothouse.api.meta import StrictModel
from pilothouse.cost.allocation import Allocation
from pilothouse.cost.money import NANO, ZERO, as_decimal, floor_percent, format_usd, non_negative, precise
from pilothouse.cost.windows import Window, month_bounds, require_aware, seconds_between

BudgetAction = Literal["refuse-endpoints", "hold-jobs", "notify"]
BUDGET_ACTIONS: tuple[BudgetAction, ...] = get_args(BudgetAction)
BudgetLevel = Literal["ok", "warning", "exceeded"]
DEFAULT_THRESHOLDS: tuple[Decimal, ...] = (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))
_ENFORCING: frozenset[BudgetAction] = frozenset({"refuse-endpoints", "hold-jobs"})


@dataclass(frozen=True, slots=True)
class BudgetState:
    """Where a team stands against its monthly budget at ``now``."""

    team: str
    level: BudgetLevel
    threshold: Decimal | None
    """The highest threshold reached (a fraction of the budget), None when ``ok``."""
    spend: Decimal
    amount: Decimal
    fraction: Decimal
    """``spend / amount``."""
    projected: Decimal
    """Linear projection of the month-end spend."""
    month: Window
    enforced: frozenset[BudgetAction]
    """The blocking actions in force: empty unless ``exceeded``; never contains ``notify``."""
    reason: str

    @property
    def percent(self) -> int:
        """Spend as a whole percent of the budget, rounded down (99.9% is not 100%)."""
        return floor_percent(self.fraction)

    @property
    def refuses_endpoints(self) -> bool:
        """New ModelEndpoints and scale-ups of existing ones must be refused."""
        return "refuse-endpoints" in self.enforced

    @property
    def holds_jobs(self) -> bool:
        """New Jobs must be held in the queue (not admitted)."""
        return "hold-jobs" in self.enforced

    @property
    def notify(self) -> bool:
        """Someone should be told (any level but ``ok``)."""
        return self.level != "ok"


def _thresholds(values: Iterable[Decimal | float | str]) -> tuple[Decimal, ...]:
    out = sorted({as_decimal(v, "thresholds") for v in values})
    if not out:
        raise ValueError("thresholds must not be empty")
    if out[0] <= 0:
        raise ValueError(f"thresholds must be fractions of the budget above 0 (got {out[0]})")
    return tuple(out)


def evaluate_budget(
    spend: Decimal | int | str,
    amount: Decimal | int | str,
    *,
    team: str,
    now: datetime,
    thresholds: Iterable[Decimal | float | str] = DEFAULT_THRESHOLDS,
    actions: Iterable[BudgetAction] = ("notify",),
) -> BudgetState:
    """Evaluate ``team``'s month-to-date ``spend`` against its monthly ``amount`` at ``now``.

    ``thresholds`` are fractions of the budget (``0.8`` = 80%); the highest one means *exceeded*.
    ``actions`` are what to enforce while exceeded (``refuse-endpoints``, ``hold-jobs``, ``notify``).
    """
    spent = non_negative(spend, "spend")
    budget = as_decimal(amount, "amount")
    if budget <= 0:
        raise ValueError(f"amount must be above zero (got {amount})")
    levels = _thresholds(thresholds)
    chosen = frozenset(actions)
    unknown = sorted(a for a in chosen if a not in BUDGET_ACTIONS)
    if unknown:
        raise ValueError(f"actions: unknown action {unknown[0]!r} (known: {', '.join(BUDGET_ACTIONS)})")
    now = require_aware(now, "now")
    month = month_bounds(now)
    with precise():
        fraction = spent / budget
        elapsed = seconds_between(month.start, now) / month.seconds
        projected = (spent / elapsed if elapsed else spent).quantize(NANO, rounding=ROUND_HALF_EVEN)
    reached = [t for t in levels if fraction >= t]
    threshold = reached[-1] if reached else None
    level: BudgetLevel = "ok" if threshold is None else ("exceeded" if threshold == levels[-1] else "warning")
    enforced = chosen & _ENFORCING if level == "exceeded" else frozenset()
    state = BudgetState(
        team=team,
        level=level,
        threshold=threshold,
        spend=spent,
        amount=budget,
        fraction=fraction,
        projected=projected,
        month=month,
        enforced=frozenset(enforced),
        reason="",
    )
    return _with_reason(state, levels[-1])


def _with_reason(state: BudgetState, limit: Decimal) -> BudgetState:
    head = (
        f"team {state.team} has spent {format_usd(state.spend)} of its {format_usd(state.amount)} "
        f"monthly budget ({state.percent}%)"
    )
    if state.level == "exceeded":
        if limit != 1:
            head += f", past its enforcement threshold of {floor_percent(limit)}%"
        if state.refuses_endpoints and state.holds_jobs:
            tail = "new endpoints and scale-ups are refused and new jobs are held"
        elif state.refuses_endpoints:
            tail = "new endpoints and scale-ups are refused"
        elif state.holds_jobs:
            tail = "new jobs are held"
        else:
            tail = "nothing is blocked (notify only)"
        reason = f"{head}; {tail}"
    else:
        if state.level == "warning" and state.threshold is not None:
            head += f", past the {floor_percent(state.threshold)}% warning"
        reason = f"{head}; projected month-end spend {format_usd(state.projected)}"
    return dataclasses.replace(state, reason=reason)


def _notify_only() -> list[BudgetAction]:
    return ["notify"]


class BudgetPolicy(StrictModel):
    """A team's budget as configuration (errors name the field, like every manifest)."""

    amount: Decimal = Field(gt=0, allow_inf_nan=False, description="US dollars per calendar month (UTC)")
    thresholds: list[Decimal] = Field(
        default_factory=lambda: list(DEFAULT_THRESHOLDS),
        description="Fractions of the amount; the highest means exceeded",
    )
    actions: list[BudgetAction] = Field(
        default_factory=_notify_only, description="What to enforce while exceeded"
    )

    @field_validator("thresholds")
    @classmethod
    def _valid_thresholds(cls, value: list[Decimal]) -> list[Decimal]:
        return list(_thresholds(value))

    def evaluate(self, spend: Decimal, *, team: str, now: datetime) -> BudgetState:
        return evaluate_budget(
            spend, self.amount, team=team, now=now, thresholds=self.thresholds, actions=self.actions
        )


def spend_by_team(allocation: Allocation) -> dict[str, Decimal]:
    """Each team's total in ``allocation`` (shared idle included): the ``spend`` budgets are judged on.

    Call ``allocate`` over ``parse_window("month", now)`` to get the month-to-date allocation.
    """
    out: dict[str, Decimal] = {}
    for item in allocation.intervals:
        out[item.owner.namespace] = out.get(item.owner.namespace, ZERO) + item.total
    return out
