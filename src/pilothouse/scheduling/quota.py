"""Quota accounting: per-team usage against nominal, borrowing and lending limits, kept incrementally.

A resource is *quota-managed* when at least one team declares a quota for it; unmanaged resources are
limited only by cluster capacity (so a cluster that only sets GPU quotas does not starve on cpu). For a
managed resource a team may always use up to its nominal; above that it borrows, at most its borrowing
limit, and only while the cohort's borrowed total stays within what members may lend: the sum over
members of ``min(idle nominal, lending limit)``. The two cohort totals are updated in O(resources) per
admission or release, so a quota check never walks the other teams.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pilothouse.scheduling.fairshare import INF, cohort_fair_shares, fill_one
from pilothouse.scheduling.resources import ResourceSpace, Vec
from pilothouse.scheduling.snapshot import TeamSpec


@dataclass(frozen=True)
class QuotaBlock:
    """Why a team may not take a job now: ``kind`` is "limit" (nominal + borrowing limit), "cohort"
    (nothing left to borrow) or "alone" (no cohort to borrow from)."""

    resource: int
    kind: str
    used: float
    limit: float
    lendable: float = 0.0


class QuotaBook:
    def __init__(self, space: ResourceSpace, teams: Sequence[TeamSpec]) -> None:
        self.space = space
        n = len(space.names)
        self.teams = list(teams)
        self.team_index = {t.name: i for i, t in enumerate(self.teams)}
        managed = {name for t in self.teams for name in t.quotas}
        self.managed = [name in managed for name in space.names]
        self.managed_idx = [r for r in range(n) if self.managed[r]]
        self.nominal = [
            [float(t.quotas[name].nominal) if name in t.quotas else 0.0 for name in space.names]
            for t in teams
        ]
        self.borrow = [
            [_limit(t, name, "borrowing_limit") if t.cohort else 0.0 for name in space.names] for t in teams
        ]
        self.lend = [
            [_limit(t, name, "lending_limit") if t.cohort else 0.0 for name in space.names] for t in teams
        ]
        self.weight = [t.weight if t.weight > 0 else 1.0 for t in teams]
        cohort_names = sorted({t.cohort for t in teams if t.cohort})
        self.cohorts: list[list[int]] = [
            [i for i, t in enumerate(teams) if t.cohort == c] for c in cohort_names
        ]
        self.cohort_names = cohort_names
        self.cohort_of = [cohort_names.index(t.cohort) if t.cohort else -1 for t in teams]
        self.usage = [[0.0] * n for _ in teams]
        self.changes = 0
        """Bumped on every usage change (cache key for fair shares)."""
        self.borrowed = [[0.0] * n for _ in cohort_names]
        self.lend_total = [
            [sum(min(self.nominal[i][r], self.lend[i][r]) for i in members) for r in range(n)]
            for members in self.cohorts
        ]
        """Per cohort: what its members may lend when all of them are idle (fixed by the specs)."""
        self.lendable = [list(row) for row in self.lend_total]
        # Denominator of shares: a cohort's (or lone team's) total nominal; capacity where that is 0.
        self.scale: list[list[float]] = []
        for i in range(len(teams)):
            c = self.cohort_of[i]
            members = self.cohorts[c] if c >= 0 else [i]
            self.scale.append([sum(self.nominal[m][r] for m in members) for r in range(n)])

    def add_team(self, spec: TeamSpec) -> int:
        """An unknown team seen in a job: no quota, no cohort (it can use only unmanaged resources)."""
        n = len(self.space.names)
        self.teams.append(spec)
        self.team_index[spec.name] = len(self.teams) - 1
        self.nominal.append([0.0] * n)
        self.borrow.append([0.0] * n)
        self.lend.append([0.0] * n)
        self.weight.append(1.0)
        self.cohort_of.append(-1)
        self.usage.append([0.0] * n)
        self.scale.append([0.0] * n)
        return len(self.teams) - 1

    def set_capacity_scale(self, capacity: Vec) -> None:
        for row in self.scale:
            for r, value in enumerate(row):
                if value <= 0:
                    row[r] = float(max(capacity[r], 1))

    # -- bookkeeping ---------------------------------------------------------------------------------

    def change(self, team: int, need: Vec, sign: int) -> None:
        self.changes += 1
        usage = self.usage[team]
        c = self.cohort_of[team]
        if c < 0:
            for r, amount in enumerate(need):
                if amount:
                    usage[r] += sign * amount
            return
        nominal, lend = self.nominal[team], self.lend[team]
        borrowed, lendable = self.borrowed[c], self.lendable[c]
        for r, amount in enumerate(need):
            if not amount:
                continue
            old = usage[r]
            new = old + sign * amount
            usage[r] = new
            nom = nominal[r]
            borrowed[r] += max(0.0, new - nom) - max(0.0, old - nom)
            lendable[r] += min(max(0.0, nom - new), lend[r]) - min(max(0.0, nom - old), lend[r])

    # -- questions -----------------------------------------------------------------------------------

    def check(self, team: int, need: Vec) -> QuotaBlock | None:
        """None if ``team`` may take ``need`` now under its quotas, else the first reason it may not."""
        usage, nominal = self.usage[team], self.nominal[team]
        c = self.cohort_of[team]
        for r in self.managed_idx:
            amount = need[r]
            if not amount:
                continue
            old = usage[r]
            new = old + amount
            nom = nominal[r]
            if new <= nom:
                continue
            if c < 0:
                return QuotaBlock(r, "alone", old, nom)
            limit = nom + self.borrow[team][r]
            if new > limit:
                return QuotaBlock(r, "limit", old, limit)
            lend = self.lend[team][r]
            more_borrowed = max(0.0, new - nom) - max(0.0, old - nom)
            less_lendable = min(max(0.0, nom - old), lend) - min(max(0.0, nom - new), lend)
            lendable = self.lendable[c][r]
            if self.borrowed[c][r] + more_borrowed > lendable - less_lendable:
                return QuotaBlock(r, "cohort", old, nom, max(0.0, lendable - self.borrowed[c][r]))
        return None

    def ceiling(self, team: int, r: int) -> float:
        """The most of managed resource ``r`` the team could ever hold: its nominal, plus what it may borrow
        (its borrowing limit, and no more than the rest of its cohort may lend)."""
        nominal = self.nominal[team][r]
        c = self.cohort_of[team]
        if c < 0:
            return nominal
        others = self.lend_total[c][r] - min(nominal, self.lend[team][r])
        return nominal + min(self.borrow[team][r], others)

    def over_ceiling(self, team: int, need: Vec) -> int | None:
        """The first managed resource of which ``need`` is more than the team could ever hold, or None."""
        for r in self.managed_idx:
            if need[r] > self.ceiling(team, r):
                return r
        return None

    def within_nominal(self, team: int, need: Vec) -> bool:
        usage, nominal = self.usage[team], self.nominal[team]
        return all(usage[r] + need[r] <= nominal[r] for r in self.managed_idx if need[r])

    def usage_share(self, team: int) -> float:
        """Weighted dominant share of what the team uses now."""
        usage, scale = self.usage[team], self.scale[team]
        return (
            max((usage[r] / scale[r] for r in range(len(usage)) if scale[r] > 0), default=0.0)
            / self.weight[team]
        )

    def borrowed_share(self, team: int) -> float:
        """Weighted dominant share of what the team borrows now (the order in which surplus is handed out)."""
        usage, nominal, scale = self.usage[team], self.nominal[team], self.scale[team]
        best = 0.0
        for r in self.managed_idx:
            over = usage[r] - nominal[r]
            if over > 0 and scale[r] > 0:
                best = max(best, over / scale[r])
        return best / self.weight[team]

    def fair_shares(self, demand: Sequence[Sequence[float]]) -> list[list[float]]:
        """Every team's fair share of every resource (unmanaged resources: its demand)."""
        out = [list(map(float, d)) for d in demand]
        for i in range(len(self.teams)):
            if self.cohort_of[i] < 0:
                for r in self.managed_idx:
                    out[i][r] = min(demand[i][r], self.nominal[i][r])
        if len(self.managed_idx) == 1:
            self._one_resource_shares(demand, out)
            return out
        for members in self.cohorts:
            if not self.managed_idx:
                break
            rs = self.managed_idx
            shares = cohort_fair_shares(
                [[demand[i][r] for r in rs] for i in members],
                [[self.nominal[i][r] for r in rs] for i in members],
                [[self.borrow[i][r] for r in rs] for i in members],
                [[self.lend[i][r] for r in rs] for i in members],
                [self.weight[i] for i in members],
            )
            for i, share in zip(members, shares, strict=True):
                for k, r in enumerate(rs):
                    out[i][r] = share[k]
        return out

    def _one_resource_shares(self, demand: Sequence[Sequence[float]], out: list[list[float]]) -> None:
        """``cohort_fair_shares`` for the common case of one managed resource (GPUs only), without the
        per-resource vectors: the simulator asks for fair shares after almost every event."""
        r = self.managed_idx[0]
        nominal, borrow, lend, weight = self.nominal, self.borrow, self.lend, self.weight
        for members in self.cohorts:
            guaranteed = []
            excess = []
            supply = 0.0
            for i in members:
                want, nom = demand[i][r], nominal[i][r]
                got = want if want < nom else nom
                guaranteed.append(got)
                supply += min(nom - got, lend[i][r])
                excess.append(min(want - got, borrow[i][r]))
            surplus = fill_one(excess, [weight[i] for i in members], supply)
            for k, i in enumerate(members):
                out[i][r] = guaranteed[k] + surplus[k]


def _limit(team: TeamSpec, name: str, field: str) -> float:
    quota = team.quotas.get(name)
    value = getattr(quota, field) if quota is not None else None
    return INF if value is None else float(value)


def quotas_of(teams: Mapping[str, TeamSpec]) -> list[TeamSpec]:
    return [teams[name] for name in sorted(teams)]
