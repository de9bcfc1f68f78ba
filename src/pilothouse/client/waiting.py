"""Waiting for an object to become Ready — or to fail for a reason that waiting will not fix.

``apply --wait`` and the demo use this: success when the Ready condition is True for the current
generation; an early, specific failure when the controller reports a terminal reason (a model that
cannot load will not load on the next try either, so the user hears it now, with the file named).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pilothouse.api.meta import get_condition
from pilothouse.api.registry import KindInfo, Resource
from pilothouse.client.http import PilothouseClient

# RolledBack is final for the generation too: the controller never retries a rolled-back template.
TERMINAL_REASONS = frozenset({"ModelLoadFailed", "NotSupported", "CrashLoopBackOff", "Error", "RolledBack"})


class WaitFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")


class WaitTimeout(WaitFailed):
    pass


def wait_ready(
    client: PilothouseClient,
    info: KindInfo,
    namespace: str,
    name: str,
    *,
    timeout: float = 120.0,
    interval: float = 0.1,
    on_progress: Callable[[Resource], None] | None = None,
) -> Resource:
    deadline = time.monotonic() + timeout
    last: Resource | None = None
    while time.monotonic() < deadline:
        obj = client.get(info, namespace, name)
        last = obj
        if on_progress is not None:
            on_progress(obj)
        ready = get_condition(obj.status.conditions, "Ready")
        current = obj.status.observedGeneration == obj.metadata.generation
        if current and ready is not None:
            if ready.status == "True":
                return obj
            if ready.reason in TERMINAL_REASONS:
                raise WaitFailed(ready.reason, ready.message)
        time.sleep(interval)
    condition = get_condition(last.status.conditions, "Ready") if last else None
    detail = f"{condition.reason}: {condition.message}" if condition else "no status yet"
    raise WaitTimeout("Timeout", f"{info.kind} {namespace}/{name} not Ready after {timeout:.0f} s ({detail})")


def wait_gone(
    client: PilothouseClient, owner_uid: str, *, timeout: float = 60.0, interval: float = 0.1
) -> None:
    """Wait until the runtime has no replica left for a deleted object."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not client.replicas_of(owner_uid):
            return
        time.sleep(interval)
    raise WaitTimeout("Timeout", f"replicas of {owner_uid} still running after {timeout:.0f} s")
