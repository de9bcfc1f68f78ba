"""The work queue's guarantees: coalescing, one worker per key, re-run when dirty, backoff."""

from __future__ import annotations

import threading
import time

from pilothouse.controllers.workqueue import WorkQueue


def test_adds_are_coalesced() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    assert queue.get(0) == "a"
    assert queue.get(0) == "b"
    assert queue.get(0) is None


def test_key_changed_while_processing_is_processed_again_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = queue.get(0)
    queue.add("a")  # arrives while "a" is being processed
    assert queue.get(0) is None  # not handed to a second worker concurrently
    queue.done(key or "")
    assert queue.get(0) == "a"


def test_backoff_grows_and_forget_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.04)
    delays = [queue.add_rate_limited("a") for _ in range(4)]
    assert delays == [0.01, 0.02, 0.04, 0.04]
    queue.forget("a")
    assert queue.add_rate_limited("a") == 0.01


def test_add_after_delays_delivery() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0.05)
    assert queue.get(0) is None
    started = time.monotonic()
    assert queue.get(1.0) == "a"
    assert time.monotonic() - started >= 0.03


def test_no_key_processed_by_two_workers_at_once() -> None:
    queue: WorkQueue[int] = WorkQueue()
    active: set[int] = set()
    overlaps: list[int] = []
    lock = threading.Lock()
    processed = 0

    def worker() -> None:
        nonlocal processed
        while (key := queue.get(0.2)) is not None:
            with lock:
                if key in active:
                    overlaps.append(key)
                active.add(key)
            time.sleep(0.001)
            with lock:
                active.discard(key)
                processed += 1
            queue.done(key)

    for i in range(200):
        queue.add(i % 5)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(200):
        queue.add(i % 5)
    for thread in threads:
        thread.join()
    assert overlaps == []
    assert processed >= 5


def test_close_wakes_waiters() -> None:
    queue: WorkQueue[str] = WorkQueue()
    result: list[str | None] = []
    thread = threading.Thread(target=lambda: result.append(queue.get()))
    thread.start()
    queue.close()
    thread.join(2)
    assert result == [None]
