"""Cost visibility, the pure core: price book, metering model, allocation, views and budgets.

Nothing here reads a clock, a store or the network: the integrator passes metered intervals, the
price book, owned capacity and ``now``, and gets exact ``Decimal`` dollars back. See ``docs/cost.md``.

Typical use::

    book = load_price_book(yaml.safe_load(text))
    window = parse_window("7d", now)
    allocation = allocate(intervals, book, window, now, capacity=[PoolCapacity("local", ...)])
    rows = aggregate(allocation, "team")
    print(to_csv(rows + [total_row(rows)]))
"""

from pilothouse.cost.allocation import (
    DEFAULT_GPU_IDLE_THRESHOLD,
    Allocation,
    IdleMode,
    IntervalCost,
    PoolCapacity,
    PoolIdle,
    allocate,
)
from pilothouse.cost.budgets import (
    BUDGET_ACTIONS,
    DEFAULT_THRESHOLDS,
    BudgetAction,
    BudgetLevel,
    BudgetPolicy,
    BudgetState,
    evaluate_budget,
    spend_by_team,
)
from pilothouse.cost.metering import (
    Kind,
    MeteredInterval,
    Owner,
    RequestTally,
    ResourceRequests,
    UsageSample,
    UsageSummary,
    integrate,
    summarize_usage,
)
from pilothouse.cost.money import format_usd, to_cents
from pilothouse.cost.pricebook import (
    DEFAULT_CPU_CORE_HOUR,
    DEFAULT_GPU_HOUR,
    DEFAULT_MEMORY_GIB_HOUR,
    LOCAL_POOL,
    PoolPrices,
    PriceBook,
    Rates,
    load_price_book,
    price_book_document,
)
from pilothouse.cost.views import IDLE, VIEWS, CostRow, View, aggregate, to_csv, to_records, total_row
from pilothouse.cost.windows import Window, month_bounds, parse_window

__all__ = [
    "BUDGET_ACTIONS",
    "DEFAULT_CPU_CORE_HOUR",
    "DEFAULT_GPU_HOUR",
    "DEFAULT_GPU_IDLE_THRESHOLD",
    "DEFAULT_MEMORY_GIB_HOUR",
    "DEFAULT_THRESHOLDS",
    "IDLE",
    "LOCAL_POOL",
    "VIEWS",
    "Allocation",
    "BudgetAction",
    "BudgetLevel",
    "BudgetPolicy",
    "BudgetState",
    "CostRow",
    "IdleMode",
    "IntervalCost",
    "Kind",
    "MeteredInterval",
    "Owner",
    "PoolCapacity",
    "PoolIdle",
    "PoolPrices",
    "PriceBook",
    "Rates",
    "RequestTally",
    "ResourceRequests",
    "UsageSample",
    "UsageSummary",
    "View",
    "Window",
    "aggregate",
    "allocate",
    "evaluate_budget",
    "format_usd",
    "integrate",
    "load_price_book",
    "month_bounds",
    "parse_window",
    "price_book_document",
    "spend_by_team",
    "summarize_usage",
    "to_cents",
    "to_csv",
    "to_records",
    "total_row",
]
