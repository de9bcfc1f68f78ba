"""Adding Kubernetes quantities and writing the sum back in the units people read (``96Gi``, ``1500m``).

The ResourceQuota ceiling is nominal + borrowing limit, and the two may be written differently
(``64Gi`` + ``34359738368``); the sum is exact (``Decimal``) and printed in the largest binary unit that
divides it, else as a plain or milli value, as ``kubectl`` would show it.
"""

from __future__ import annotations

from decimal import Decimal

from pilothouse.api.quantity import parse_quantity

_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def format_quantity(value: Decimal) -> str:
    if value == value.to_integral_value():
        whole = int(value)
        for suffix, size in _BINARY:
            if whole >= size and whole % size == 0:
                return f"{whole // size}{suffix}"
        return str(whole)
    millis = (value * 1000).to_integral_value(rounding="ROUND_CEILING")
    return f"{int(millis)}m"


def add_quantities(*values: str) -> str:
    return format_quantity(sum((parse_quantity(v) for v in values), Decimal(0)))
