"""The monitor loop: one background thread that notices exits, probes readiness and restarts crashes.

One thread for all replicas (not one per replica) keeps the runtime cheap and makes every state change
happen in one place. The thread alternates between short critical sections (look at processes, start what
is due) and lock-free work (HTTP probes, change callbacks), so ``observe``/``ensure`` never wait on a
slow replica. Restarts back off exponentially, like Kubernetes' CrashLoopBackOff, so a model that cannot
load does not burn a CPU (or flood its log) restarting in a tight loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    cap: float = 30.0
    reset_after: float = 30.0
    """Seconds Ready after which a crash counts as a first crash again."""

    def next(self, current: float, ready_for: float | None) -> float:
        if current <= 0 or (ready_for is not None and ready_for >= self.reset_after):
            return self.initial
        return min(current * 2, self.cap)


@dataclass(frozen=True)
class Termination:
    reason: str
    message: str


def read_termination_log(path: Path, limit: int = 4096) -> Termination | None:
    """The ``Reason: message`` line a process wrote before exiting, if it wrote one."""
    try:
        with open(path, "rb") as f:
            text = f.read(limit).decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    if not text:
        return None
    first = text.splitlines()[0].strip()
    head, sep, rest = first.partition(":")
    if sep and head.isidentifier() and head[:1].isupper():
        return Termination(head, rest.strip() or first)
    return Termination("", text)


def probe(client: httpx.Client, url: str) -> tuple[bool, str]:
    """(ready, why not) for one readiness URL."""
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if response.status_code == 200:
        return True, ""
    return False, f"readiness probe answered HTTP {response.status_code}"


class Monitor:
    """Calls ``tick()`` every ``interval`` seconds (sooner after ``wake()``) on a daemon thread."""

    def __init__(self, tick: Callable[[], None], interval: float, name: str = "pilothouse-runtime") -> None:
        self._tick = tick
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:
                log.exception("local runtime monitor tick failed")
            self._wake.wait(self._interval)
            self._wake.clear()
