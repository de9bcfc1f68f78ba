"""Drives reconcilers: list+watch the store, resync periodically, run keys through worker threads.

Level-triggered and hard to kill, as Ray Serve's controller is: an exception in one object's reconcile is
logged, recorded, and retried with backoff; the loop goes on with every other object. A watch that
expires re-lists. Nothing here knows any kind's logic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pilothouse.controllers.metrics import ControlPlaneMetrics
from pilothouse.controllers.workqueue import WorkQueue
from pilothouse.store.protocol import Expired, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectKey:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Result:
    requeue_after: float | None = None
    """Reconcile again after this many seconds even if nothing changes (e.g. waiting on a replica)."""


class Reconciler(Protocol):
    kind: str

    def reconcile(self, key: ObjectKey) -> Result: ...

    def resync(self, live_keys: set[ObjectKey]) -> None:
        """Called each resync with every stored key of the kind: clean up what no longer has an owner."""
        ...


class Manager:
    def __init__(
        self,
        store: Store,
        reconcilers: list[Reconciler],
        *,
        resync_seconds: float = 10.0,
        workers: int = 2,
        metrics: ControlPlaneMetrics | None = None,
    ) -> None:
        self.store = store
        self.reconcilers = {r.kind: r for r in reconcilers}
        self.queue: WorkQueue[ObjectKey] = WorkQueue()
        self.resync_seconds = resync_seconds
        self._workers = workers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.reconcile_count = 0
        self.error_count = 0
        # -- observability hook: reconcile timing, queue depth, admission waits (controllers/metrics.py)
        self.metrics = metrics
        if metrics is not None:
            metrics.track_queue(self.queue.__len__)
            for kind in self.reconcilers:
                metrics.track_kind(kind)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        since = self._resync()
        self._spawn(lambda: self._watch_loop(since), "watch")
        self._spawn(self._resync_loop, "resync")
        for i in range(self._workers):
            self._spawn(self._worker_loop, f"worker-{i}")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.queue.close()
        for thread in self._threads:
            thread.join(timeout)

    def register(self, reconciler: Reconciler) -> None:
        """Add a reconciler before ``start`` (reconcilers that enqueue keys need the manager first)."""
        self.reconcilers[reconciler.kind] = reconciler
        if self.metrics is not None:  # observability hook
            self.metrics.track_kind(reconciler.kind)

    def enqueue(self, key: ObjectKey) -> None:
        self.queue.add(key)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"pilothouse-manager-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- sources of work -------------------------------------------------------------------------

    def _resync(self) -> int:
        """Enqueue every object of every kind; let reconcilers collect orphans. Returns the list version."""
        version = self.store.current_version()
        for kind, reconciler in self.reconcilers.items():
            result = self.store.list(kind)
            version = min(version, result.resource_version)
            keys = {ObjectKey(kind, o.metadata.namespace, o.metadata.name) for o in result.items}
            for key in keys:
                self.queue.add(key)
            try:
                reconciler.resync(keys)
            except Exception:
                log.exception("resync of %s failed", kind)
        return version

    def _resync_loop(self) -> None:
        while not self._stop.wait(self.resync_seconds):
            try:
                self._resync()
            except Exception:
                log.exception("resync failed")

    def _watch_loop(self, since: int) -> None:
        while not self._stop.is_set():
            try:
                for event in self.store.watch(None, since=since, timeout=1.0):
                    since = event.resource_version
                    if self.metrics is not None:  # observability hook: job admission waits
                        self.metrics.observed(event.type, event.object)
                    if event.object.kind in self.reconcilers:
                        meta = event.object.metadata
                        self.queue.add(ObjectKey(event.object.kind, meta.namespace, meta.name))
                    if self._stop.is_set():
                        return
            except Expired:
                log.warning("watch expired at resourceVersion %s; re-listing", since)
                since = self._resync()
            except Exception:
                log.exception("watch failed; retrying")
                self._stop.wait(1.0)

    # -- workers ---------------------------------------------------------------------------------

    def _worker_loop(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            started = time.perf_counter()
            try:
                result = self.reconcilers[key.kind].reconcile(key)
                self.reconcile_count += 1
                log.debug("reconciled %s in %.1f ms", key, (time.perf_counter() - started) * 1e3)
            except Exception:
                self.error_count += 1
                if self.metrics is not None:  # observability hook
                    self.metrics.reconciled(key.kind, time.perf_counter() - started, error=True)
                delay = self.queue.add_rate_limited(key)
                log.exception("reconcile of %s failed; retrying in %.2f s", key, delay)
            else:
                if self.metrics is not None:  # observability hook
                    requeue = result.requeue_after is not None
                    self.metrics.reconciled(
                        key.kind, time.perf_counter() - started, error=False, requeue=requeue
                    )
                self.queue.forget(key)
                if result.requeue_after is not None:
                    self.queue.add_after(key, result.requeue_after)
            finally:
                self.queue.done(key)
