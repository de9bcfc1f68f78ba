"""``Team``: a tenant with GPU/CPU/memory quotas, a cohort to share idle quota with, and a fair-share weight.

Modelled on Kueue's ClusterQueue (nominal quota, borrowing and lending limits, cohorts) because that is
what platform teams already understand; a Team owns the namespace of the same name, where its Jobs and
ModelEndpoints live.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pilothouse.api.meta import API_VERSION, ClusterObjectMeta, Condition, DNSLabel, StrictModel
from pilothouse.api.quantity import Quantity

BUILTIN_PRIORITY_CLASSES: dict[str, int] = {"low": 100, "normal": 500, "high": 1000}
"""Priority class name -> value; higher runs first within a team and may preempt lower (within the team)."""


class ResourceQuota(StrictModel):
    nominal: Quantity = Field(
        description="Guaranteed amount (GPUs as a count, cpu in cores, memory in bytes)"
    )
    borrowingLimit: Quantity | None = Field(
        default=None,
        description="How much more than nominal it may borrow from its cohort; unset = unlimited",
    )
    lendingLimit: Quantity | None = Field(
        default=None, description="How much of its unused nominal others may borrow; unset = all of it"
    )


BudgetAction = Literal["notify", "refuse-endpoints", "hold-jobs"]


def _notify_only() -> list[BudgetAction]:
    return ["notify"]


class Budget(StrictModel):
    """A monthly spending limit (calendar month, UTC) and what happens as it is reached."""

    monthlyAmount: float = Field(gt=0, description="US dollars per calendar month")
    thresholds: list[float] = Field(
        default_factory=lambda: [0.5, 0.8, 1.0], description="Fractions of the amount that raise a warning"
    )
    actions: list[BudgetAction] = Field(
        default_factory=_notify_only, description="What to enforce once the budget is exceeded"
    )

    @field_validator("thresholds")
    @classmethod
    def _sorted_positive(cls, value: list[float]) -> list[float]:
        if not value or any(t <= 0 for t in value) or value != sorted(value):
            raise ValueError("thresholds must be positive and increasing, e.g. [0.5, 0.8, 1.0]")
        return value


class TeamSpec(StrictModel):
    quotas: dict[str, ResourceQuota] = Field(
        default_factory=dict, description="Per resource: nvidia.com/gpu, cpu, memory"
    )
    cohort: DNSLabel | None = Field(
        default=None, description="Teams in one cohort lend each other idle quota"
    )
    weight: float = Field(default=1.0, gt=0, le=1000, description="Fair-share weight within the cohort")
    priorityClasses: list[str] = Field(default_factory=lambda: list(BUILTIN_PRIORITY_CLASSES))
    budget: Budget | None = None

    @field_validator("priorityClasses")
    @classmethod
    def _known_classes(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in BUILTIN_PRIORITY_CLASSES]
        if unknown:
            raise ValueError(
                f"unknown priority class {unknown[0]!r} (known: {', '.join(BUILTIN_PRIORITY_CLASSES)})"
            )
        return value

    @model_validator(mode="after")
    def _resource_names(self) -> TeamSpec:
        for name in self.quotas:
            if name not in {"cpu", "memory"} and "/" not in name:
                raise ValueError(
                    f"quotas: unknown resource {name!r} (use cpu, memory or e.g. nvidia.com/gpu)"
                )
        return self


class ResourceUsage(StrictModel):
    used: str = "0"
    borrowed: str = "0"
    fairShare: str = Field(default="0", description="What the team is entitled to now, given cohort demand")


class TeamStatus(StrictModel):
    observedGeneration: int | None = None
    resources: dict[str, ResourceUsage] = Field(default_factory=dict)
    runningJobs: int = 0
    pendingJobs: int = 0
    spendThisMonth: str | None = Field(default=None, description="US dollars, from metering")
    budgetState: str | None = Field(default=None, description="ok, warning or exceeded, with the reason")
    conditions: list[Condition] = Field(default_factory=list)


class Team(StrictModel):
    apiVersion: Literal["pilothouse.dev/v1alpha1"] = API_VERSION
    kind: Literal["Team"] = "Team"
    metadata: ClusterObjectMeta
    spec: TeamSpec = Field(default_factory=TeamSpec)
    status: TeamStatus = Field(default_factory=TeamStatus)
