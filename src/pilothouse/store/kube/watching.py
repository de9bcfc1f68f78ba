"""Watching custom resources: the client's ``watch.Watch`` stream, resumed, merged and bounded in time.

The Store contract's ``watch(kind, since, timeout)`` differs from one Kubernetes watch in three ways,
bridged here:

- ``timeout`` is an *idle* timeout (stop after that long without a change), not ``timeoutSeconds`` (a
  whole-stream limit in whole seconds). Each request gets a short client-side read timeout instead, and
  the stream is re-opened from the last resourceVersion seen (bookmarks included) until the idle
  deadline passes or the store is closed. Re-watching from the last version loses and repeats nothing.
- ``kind=None`` means every kind: Kubernetes watches one resource at a time, so one thread per kind
  feeds a queue. Each kind's events stay in resourceVersion order; across kinds they come in arrival
  order (Kubernetes has no cross-resource watch either).
- A 410 ``Expired`` (an ``ERROR`` event on the stream) becomes ``Expired``: the caller must re-list.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from kubernetes import client, watch
from pilothouse.store.kube.codec import CustomResource, from_document
from pilothouse.store.kube.errors import translate
from pilothouse.store.protocol import WatchEvent, WatchEventType

WATCH: Any = watch.Watch
"""The client's watch helper (untyped upstream)."""
_TYPES: dict[str, WatchEventType] = {"ADDED": "ADDED", "MODIFIED": "MODIFIED", "DELETED": "DELETED"}
Heartbeat = None
"""Put on the queue for a bookmark or a quiet poll: lets the consumer check its deadline and stop flag."""


def _pump(
    api: client.CustomObjectsApi,
    resource: CustomResource,
    since: int,
    stop: threading.Event,
    out: queue.Queue[WatchEvent | BaseException | None],
    poll: float,
) -> None:
    last = since
    try:
        while not stop.is_set():
            stream: Any = WATCH()
            try:
                for raw in stream.stream(
                    api.list_cluster_custom_object,
                    resource.group,
                    resource.version,
                    resource.plural,
                    resource_version=str(last),
                    allow_watch_bookmarks=True,
                    _request_timeout=(10, poll),
                ):
                    doc: dict[str, Any] = raw["raw_object"]
                    last = int(doc["metadata"]["resourceVersion"])
                    kind = _TYPES.get(raw["type"])
                    if kind is None:
                        out.put(Heartbeat)
                    else:
                        out.put(WatchEvent(kind, from_document(resource.info.kind, doc), last))
                    if stop.is_set():
                        stream.stop()
                        break
            except urllib3.exceptions.HTTPError:
                out.put(Heartbeat)  # a quiet poll (read timeout) or a dropped connection: re-watch
    except ApiException as exc:
        out.put(translate(exc, f"watch {resource.plural}"))
    except BaseException as exc:
        out.put(exc)


def follow(
    api: client.CustomObjectsApi,
    resources: list[CustomResource],
    since: int,
    timeout: float | None,
    closed: Callable[[], bool],
    poll: float,
) -> Iterator[WatchEvent]:
    """Changes after ``since`` of ``resources``; ends after ``timeout`` idle seconds or when ``closed()``."""
    stop = threading.Event()
    events: queue.Queue[WatchEvent | BaseException | None] = queue.Queue()
    threads = [
        threading.Thread(
            target=_pump, args=(api, r, since, stop, events, poll), name=f"watch-{r.plural}", daemon=True
        )
        for r in resources
    ]
    for thread in threads:
        thread.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not closed():
            wait = poll if deadline is None else min(poll, deadline - time.monotonic())
            if wait <= 0:
                return
            try:
                item = events.get(timeout=wait)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                yield item
                deadline = None if timeout is None else time.monotonic() + timeout
    finally:
        stop.set()
