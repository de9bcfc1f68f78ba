"""Following the change log: replay what a watcher missed, then wait for commits without polling.

The control plane is one process, so a ``threading.Condition`` that the store notifies after each commit
is enough to wake every watcher at once. Watchers remember a sequence number taken *before* they read
the log, so a commit that lands between their read and their wait is never slept through.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from pilothouse.store.protocol import WatchEvent

Fetch = Callable[[int], tuple[list[WatchEvent], int]]
"""Given the last resourceVersion seen, the next changes in order and the store's version at that read
(it lets a filtered watch move past changes it does not care about); raises ``Expired``."""


class Notifier:
    """Wakes watchers after a commit; ``close`` wakes them for good."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self.closed = False

    def notify(self) -> None:
        with self._cond:
            self._seq += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def sequence(self) -> int:
        with self._cond:
            return self._seq

    def wait_past(self, seq: int, deadline: float | None) -> bool:
        """Wait until a commit after ``seq``; False when the deadline passed or the store closed first."""
        with self._cond:
            while self._seq == seq and not self.closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return not self.closed


def follow(fetch: Fetch, notifier: Notifier, since: int, timeout: float | None) -> Iterator[WatchEvent]:
    """Yield every change after ``since``; return after ``timeout`` seconds without one, or on close."""
    last = since
    deadline = None if timeout is None else time.monotonic() + timeout
    while not notifier.closed:
        seq = notifier.sequence()
        events, head = fetch(last)
        for event in events:
            yield event
            last = event.resource_version
            deadline = None if timeout is None else time.monotonic() + timeout
        if events:
            continue  # there may be more than one batch
        last = max(last, head)
        if not notifier.wait_past(seq, deadline):
            return
