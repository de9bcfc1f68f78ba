"""Money as exact ``Decimal`` amounts: one internal precision, one presentation rounding.

Cost reports are read next to invoices, so a cent that appears or vanishes between a team's rows and
the total is a bug report. Binary floats cannot hold $0.031611 exactly, so every amount here is a
``Decimal``. Two rules keep sums exact:

* **Internal unit: the nano-dollar.** Each charge (one resource of one interval, in one window) is
  computed exactly and quantized once to $0.000000001 (``NANO``, half-even). Every later step only adds
  such amounts, which is exact, so rows always add up to their totals.
* **Presentation: cents, half-even** (banker's rounding, ``ROUND_HALF_EVEN``), applied only when an
  amount is shown (``to_cents``, ``format_usd``). Half-even is unbiased over many rows and is what
  ``Decimal`` and ``round()`` do by default. A total is rounded from the exact sum, not summed from
  rounded rows, so rounded rows may differ from the rounded total by a cent or two.

Proportional splits (idle capacity shared across teams) use the largest-remainder method in
nano-dollars, so the parts always add up to the whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, localcontext
from fractions import Fraction

NANO = Decimal("0.000000001")
"""The internal unit of account: every charge is quantized to this once."""
CENT = Decimal("0.01")
ZERO = Decimal(0)
SECONDS_PER_HOUR = Decimal(3600)
BYTES_PER_GIB = Decimal(2**30)
_PRECISION = 80
"""Digits for intermediate products (bytes x seconds x price reaches ~40 digits; 28 is the default)."""


def precise() -> AbstractContextManager[Context]:
    """A decimal context wide enough that products of quantities, seconds and prices are exact."""
    return localcontext(prec=_PRECISION)


def charge(unit_seconds: Decimal, hourly_price: Decimal) -> Decimal:
    """Dollars for ``unit_seconds`` (core-seconds, GiB-seconds, GPU-seconds) at ``hourly_price`` per unit-hour.

    The only rounding step of the cost model: exact product, one division by 3600, one quantization.
    """
    with precise():
        return (unit_seconds * hourly_price / SECONDS_PER_HOUR).quantize(NANO, rounding=ROUND_HALF_EVEN)


def exact(value: Decimal) -> Decimal:
    """Apply ``+`` under the high-precision context (normalizes a computed quantity without rounding it)."""
    with precise():
        return +value


def split(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` (a nano-dollar amount) in proportion to ``weights``; the parts sum to ``total`` exactly.

    Largest remainder: each part gets the floor of its exact share in nano-dollars, and the nano-dollars
    left over go one each to the largest remainders (ties to the earlier weight, so it is deterministic).
    All weights zero (or no weights) is the caller's problem: it raises ``ValueError``.
    """
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    weight_sum = sum((Fraction(w) for w in weights), Fraction(0))
    if weight_sum == 0:
        raise ValueError("cannot split by weights that are all zero")
    units = Fraction(total) / Fraction(NANO)
    if units.denominator != 1:
        raise ValueError(f"total {total} is not a whole number of nano-dollars")
    exact_shares = [units * Fraction(w) / weight_sum for w in weights]
    floors = [s.numerator // s.denominator for s in exact_shares]
    left = int(units) - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(exact_shares[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [Decimal(units_i) * NANO for units_i in floors]


def to_cents(amount: Decimal) -> Decimal:
    """Round for presentation: to the cent, half-even."""
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


def format_usd(amount: Decimal) -> str:
    """``$1,234.56`` (cents, half-even); negative amounts as ``-$1.00``."""
    cents = to_cents(amount)
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents):,.2f}"


def floor_percent(fraction: Decimal) -> int:
    """A fraction as a whole percent, rounded down, so 99.9% never reads as 100%."""
    with precise():
        return int((fraction * 100).to_integral_value(rounding=ROUND_FLOOR))


def as_decimal(value: Decimal | int | float | str, what: str) -> Decimal:
    """Accept the number types people write; floats go through ``str`` so 0.95 stays 0.95."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a number, got {value!r}")
    try:
        out = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except ArithmeticError as exc:
        raise ValueError(f"{what}: not a number: {value!r}") from exc
    if not out.is_finite():
        raise ValueError(f"{what}: must be finite, got {value!r}")
    return out


def non_negative(value: Decimal | int | float | str, what: str) -> Decimal:
    """``as_decimal`` that also refuses negative amounts (no resource or price is below zero)."""
    amount = as_decimal(value, what)
    if amount < 0:
        raise ValueError(f"{what} must not be negative (got {value})")
    return amount


def amount_map(values: Mapping[str, Decimal | int | float | str], what: str) -> dict[str, Decimal]:
    """Validate a ``{resource: amount}`` map; zero entries are dropped so "no GPU" has one spelling."""
    out: dict[str, Decimal] = {}
    for key, value in values.items():
        amount = non_negative(value, f"{what}[{key}]")
        if amount:
            out[key] = amount
    return out
