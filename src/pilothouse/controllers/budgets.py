"""Budgets that act: the latest month-to-date spend per team, and each team's budget state from it.

The metering loop prices the month so far every budget period and hands the result to a
``BudgetLedger``; everything that enforces a budget asks the ledger, so the numbers agree everywhere:

* the **queue pass** holds new jobs of a team whose budget holds jobs (reason ``BudgetExceeded``);
* **API admission** refuses new endpoints and scale-ups of a team whose budget refuses endpoints;
* the metering loop writes ``Team.status.spendThisMonth`` and ``budgetState`` for ``describe``.

The spend is at most one budget period old; the budget itself (amount, thresholds, actions) is read
from the Team when asked, so an edited budget applies at once. Pricing the month is not done on the
admission path: that would read a month of samples per request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pilothouse.api.team import Team
from pilothouse.cost import BudgetState, evaluate_budget, month_bounds, to_cents

BUDGET_EXCEEDED = "BudgetExceeded"
"""The reason a held job (and a refused endpoint) carries."""


@dataclass(frozen=True)
class SpendSnapshot:
    spend: dict[str, Decimal]
    as_of: datetime


class BudgetLedger:
    """Thread-safe holder of the latest month-to-date spend per team."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: SpendSnapshot | None = None

    def update(self, spend: dict[str, Decimal], as_of: datetime) -> None:
        with self._lock:
            self._snapshot = SpendSnapshot(dict(spend), as_of)

    def spend(self, team: str, now: datetime) -> Decimal | None:
        """The team's spend this month; None before the first pricing (0 if priced in another month)."""
        with self._lock:
            snapshot = self._snapshot
        if snapshot is None:
            return None
        if month_bounds(snapshot.as_of) != month_bounds(now):
            return Decimal(0)
        return snapshot.spend.get(team, Decimal(0))

    def state(self, team: Team, now: datetime) -> BudgetState | None:
        """Where ``team`` stands against its budget, or None (no budget, or nothing priced yet)."""
        budget = team.spec.budget
        spend = self.spend(team.metadata.name, now)
        if budget is None or spend is None:
            return None
        return evaluate_budget(
            spend,
            Decimal(str(budget.monthlyAmount)),
            team=team.metadata.name,
            now=now,
            thresholds=[Decimal(str(t)) for t in budget.thresholds],
            actions=budget.actions,
        )

    def holding_jobs(self, teams: list[Team], now: datetime) -> dict[str, str]:
        """Team name -> reason, for every team whose budget holds new jobs now."""
        held: dict[str, str] = {}
        for team in teams:
            state = self.state(team, now)
            if state is not None and state.holds_jobs:
                held[team.metadata.name] = state.reason
        return held


def status_text(state: BudgetState | None) -> str | None:
    """``Team.status.budgetState``: the level, then the reason in plain words."""
    return None if state is None else f"{state.level}: {state.reason}"


def spend_text(spend: Decimal | None) -> str | None:
    """``Team.status.spendThisMonth``: US dollars, to the cent."""
    return None if spend is None else str(to_cents(spend))
