"""Kubernetes resource quantities (``500m``, ``32Gi``, ``1.5``), parsed exactly with ``Decimal``.

Manifests copied from real clusters use these strings for CPU and memory; we accept the same grammar
as the Kubernetes API server so a manifest means the same thing in both modes. The official client
has a parser, but this layer must not depend on a Kubernetes client.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import BeforeValidator

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^([+-]?[0-9]+(?:\.[0-9]*)?|[+-]?\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)


def parse_quantity(text: str | int | float) -> Decimal:
    """Return the quantity's value in base units (cores, bytes). Raises ``ValueError`` if malformed."""
    if isinstance(text, bool):
        raise ValueError(f"not a quantity: {text!r}")
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {text!r} (examples: 500m, 2, 512Mi, 32Gi)")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        value = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from exc
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix in _DECIMAL:
        return value * _DECIMAL[suffix]
    return value * (Decimal(10) ** int(suffix[1:]))


def _validate(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    amount = parse_quantity(value)
    if amount < 0:
        raise ValueError(f"quantity must not be negative: {value!r}")
    return str(value)


Quantity = Annotated[str, BeforeValidator(_validate)]
"""A validated quantity kept as the user wrote it (so round trips are exact)."""
