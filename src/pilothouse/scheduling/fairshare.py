"""Fair shares: what each team is entitled to right now, given who has demand.

Rule (KAI's "deserved first, then surplus", with DRF for the surplus): inside a cohort each team first
gets ``min(demand, nominal)`` of every resource. The idle nominal that may be lent (per team: at most its
lending limit) is then water-filled among the teams that want more than nominal, by weighted *dominant
resource share* (Ghodsi et al., DRF): all such teams grow together, each in proportion to its own excess
demand vector, so that their dominant share divided by weight stays equal, until a team's excess (capped
by its borrowing limit) is met or a resource runs out; teams whose demand touches an exhausted resource
stop, the rest keep growing. A team with no cohort is entitled to ``min(demand, nominal)``.

This is what reclaim restores ("up to the owner's fair share, not just its nominal quota") and what the
Team status shows as ``fairShare``. It is O((teams + resources) * resources) per cohort.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

INF = float("inf")
EPS = 1e-9


def water_fill(
    excess: Sequence[Sequence[float]],
    weights: Sequence[float],
    supply: Sequence[float],
    scale: Sequence[float],
) -> list[list[float]]:
    """Weighted DRF progressive filling of ``supply`` among teams wanting ``excess``.

    ``scale[r]`` turns amounts into shares (the cohort's total nominal of resource r). Returns each team's
    allocation, never above its excess, summing to at most ``supply`` per resource.
    """
    n_res = len(supply)
    if n_res == 1:
        return [[a] for a in fill_one([e[0] for e in excess], weights, supply[0])]
    alloc = [[0.0] * n_res for _ in excess]
    # unit[t][r]: amount of r team t gets per unit of level (level = weighted dominant share).
    unit: list[list[float]] = []
    finish: list[tuple[float, int]] = []
    for t, want in enumerate(excess):
        shares = [want[r] / scale[r] if scale[r] > 0 else 0.0 for r in range(n_res)]
        dom = max(shares, default=0.0)
        if dom <= EPS or weights[t] <= 0:
            unit.append([0.0] * n_res)
            continue
        unit.append([weights[t] * want[r] / dom for r in range(n_res)])
        finish.append((dom / weights[t], t))
    heapq.heapify(finish)
    active = {t for _, t in finish}
    remaining = [float(s) for s in supply]
    rate = [sum(unit[t][r] for t in active) for r in range(n_res)]
    level = 0.0
    while active:
        next_level, saturated = INF, -1
        for r in range(n_res):
            if rate[r] > EPS:
                at = level + max(remaining[r], 0.0) / rate[r]
                if at < next_level:
                    next_level, saturated = at, r
        while finish and finish[0][1] not in active:
            heapq.heappop(finish)
        team_done = finish[0][0] if finish else INF
        if team_done <= next_level:
            next_level, saturated = team_done, -1
        for r in range(n_res):
            remaining[r] -= rate[r] * (next_level - level)
        level = next_level
        if saturated < 0:
            _, t = heapq.heappop(finish)
            stopping = [t]
        else:
            stopping = [t for t in active if unit[t][saturated] > EPS]
        for t in stopping:
            active.discard(t)
            for r in range(n_res):
                alloc[t][r] = min(excess[t][r], unit[t][r] * level)
                rate[r] -= unit[t][r]
    return alloc


def fill_one(excess: Sequence[float], weights: Sequence[float], supply: float) -> list[float]:
    """Weighted max-min fairness of one resource (the common GPU-only case), O(teams log teams)."""
    alloc = [0.0] * len(excess)
    order = sorted(
        (e / w, t) for t, (e, w) in enumerate(zip(excess, weights, strict=True)) if e > EPS and w > 0
    )
    weight_left = sum(weights[t] for _, t in order)
    left = max(supply, 0.0)
    for level, t in order:
        if level * weight_left <= left:
            alloc[t] = excess[t]
            left -= excess[t]
            weight_left -= weights[t]
        else:
            share = left / weight_left
            for _, rest in order[order.index((level, t)) :]:
                alloc[rest] = share * weights[rest]
            break
    return alloc


def cohort_fair_shares(
    demand: Sequence[Sequence[float]],
    nominal: Sequence[Sequence[float]],
    borrowing_limit: Sequence[Sequence[float]],
    lending_limit: Sequence[Sequence[float]],
    weights: Sequence[float],
) -> list[list[float]]:
    """Fair share of every member of one cohort (limits: ``INF`` when unset)."""
    n_res = len(nominal[0]) if nominal else 0
    guaranteed = [[min(d[r], nom[r]) for r in range(n_res)] for d, nom in zip(demand, nominal, strict=True)]
    supply = [
        sum(min(nominal[t][r] - guaranteed[t][r], lending_limit[t][r]) for t in range(len(nominal)))
        for r in range(n_res)
    ]
    excess = [
        [min(demand[t][r] - guaranteed[t][r], borrowing_limit[t][r]) for r in range(n_res)]
        for t in range(len(nominal))
    ]
    scale = [float(sum(nom[r] for nom in nominal)) for r in range(n_res)]
    surplus = water_fill(excess, weights, supply, scale)
    return [[g + s for g, s in zip(gt, st, strict=True)] for gt, st in zip(guaranteed, surplus, strict=True)]
