"""Fault injection: make the next N matching requests fail before they touch any state.

kmock's DSL can script responses too, but kmock applies a write to its object store *before* a
reaction answers, so an injected 503 there still creates the object. Here a rule is checked first, and
a failed request changes nothing, which is what a client retrying after a 503 must be able to assume.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from .errors import status_body

_REASONS = {
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class FaultRule:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    reason: str
    message: str
    hits: int = 0

    @property
    def exhausted(self) -> bool:
        return self.hits >= self.times


@dataclass
class Faults:
    _rules: list[FaultRule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, status: int = 503, times: int = 1, message: str = "") -> FaultRule:
        """Fail the next ``times`` requests with this method (``*`` for any) and path regex (searched)."""
        rule = FaultRule(
            method=method.upper(),
            path=re.compile(path),
            status=status,
            times=times,
            reason=_REASONS.get(status, "InternalError"),
            message=message or f"injected fault: HTTP {status}",
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def match(self, method: str, path: str) -> dict[str, object] | None:
        """The Status body to answer with, or None; counts the hit."""
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or rule.method not in {"*", method.upper()} or not rule.path.search(path):
                    continue
                rule.hits += 1
                return status_body(rule.status, rule.reason, rule.message)
        return None
