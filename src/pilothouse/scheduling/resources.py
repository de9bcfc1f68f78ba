"""Resource vectors as fixed-order integer tuples, and how amounts are said in plain words.

The core compares and adds resource vectors millions of times per simulated trace; dict arithmetic on
``{"nvidia.com/gpu": 4}`` is several times slower than zipping two short tuples, so every vector is
converted once, on entry, to a tuple indexed by a ``ResourceSpace`` fixed for the engine's lifetime.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

Vec = tuple[int, ...]


class ResourceSpace:
    """The resource names of one engine, in sorted order (so the same snapshot always maps the same way)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(sorted(set(names)))
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        self.zero: Vec = (0,) * len(self.names)

    def vec(self, amounts: Mapping[str, int], times: int = 1) -> Vec:
        out = [0] * len(self.names)
        for name, amount in amounts.items():
            if amount:
                out[self.index[name]] += int(amount) * times
        return tuple(out)

    def as_dict(self, v: Sequence[float]) -> dict[str, float]:
        return {name: float(v[i]) for i, name in enumerate(self.names)}


def add(a: Vec, b: Vec) -> Vec:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def sub(a: Vec, b: Vec) -> Vec:
    return tuple(x - y for x, y in zip(a, b, strict=True))


def fits(need: Vec, avail: Sequence[float]) -> bool:
    return all(n <= a for n, a in zip(need, avail, strict=True))


def first_short(need: Vec, avail: Sequence[float]) -> int | None:
    """Index of the first resource where ``need`` exceeds ``avail``, or None if it fits."""
    for i, (n, a) in enumerate(zip(need, avail, strict=True)):
        if n > a:
            return i
    return None


def amount(name: str, value: float) -> str:
    """``4 nvidia.com/gpu``, ``2.5 cpu`` (from millicores), ``16 GiB memory`` (from bytes)."""
    if name == "cpu":
        return f"{_num(value / 1000)} cpu"
    if name == "memory":
        return f"{_num(value / 2**30)} GiB memory"
    return f"{_num(value)} {name}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def relative(seconds: float) -> str:
    """A delay in plain words: ``now``, ``in ~12 min``, ``in ~3 h``, ``in ~2 d`` (the clock is abstract)."""
    if seconds < 30:
        return "now"
    if seconds < 5400:
        return f"in ~{max(1, round(seconds / 60))} min"
    if seconds < 172800:
        return f"in ~{round(seconds / 3600)} h"
    return f"in ~{round(seconds / 86400)} d"
