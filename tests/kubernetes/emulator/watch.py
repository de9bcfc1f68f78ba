"""Watch streams: from a resourceVersion, filtered, bounded in time, droppable.

kmock 0.8 replays every existing object as ADDED on each watch and ignores ``resourceVersion`` and
``timeoutSeconds``: a client that lists and then watches from the list's version sees everything twice
and the stream never ends. Here, as on a real apiserver:

- no ``resourceVersion`` (or ``"0"``): synthetic ADDED events for the current objects, then changes;
- ``resourceVersion=N``: only changes after N, in order; if N is older than the retained change log,
  one ``ERROR`` event with a 410 ``Expired`` Status (on a 200 stream, as the watch cache does);
- ``labelSelector``/``fieldSelector`` filter the events; ``timeoutSeconds`` ends the stream;
  ``allowWatchBookmarks=true`` adds a ``BOOKMARK`` with the current version every ``bookmark_interval``;
- the hub lets tests end every open stream (cleanly, as the apiserver does at its timeout, or abruptly,
  as a broken connection) to prove that clients resume from the last version they saw.

The state may change in any thread; the hub wakes the streams in the server's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp.web

from .discovery import ResourceType
from .errors import expired_status
from .objects import Change, ClusterState, Gone
from .selectors import Matcher


class WatchHub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self.generation = 0
        """Bumped to end every open stream."""
        self.abrupt = False
        self.open_streams = 0

    @property
    def event(self) -> asyncio.Event:
        return self._event

    def _wake(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def notify_threadsafe(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def drop_threadsafe(self, *, abrupt: bool) -> None:
        def drop() -> None:
            self.generation += 1
            self.abrupt = abrupt
            self._wake()

        self._loop.call_soon_threadsafe(drop)


async def serve_watch(
    raw: aiohttp.web.BaseRequest,
    state: ClusterState,
    hub: WatchHub,
    rt: ResourceType,
    namespace: str | None,
    match: Matcher,
    *,
    since: int | None,
    timeout: float | None,
    bookmarks: bool,
    bookmark_interval: float,
) -> aiohttp.web.StreamResponse:
    response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(raw)
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    generation = hub.generation
    hub.open_streams += 1

    def present(obj: dict[str, Any]) -> dict[str, Any]:
        return {**obj, "apiVersion": rt.api_version, "kind": rt.kind}

    def wanted(change: Change) -> bool:
        return (
            change.group == rt.group
            and change.plural == rt.plural
            and (namespace is None or change.namespace == namespace)
            and match(present(change.obj))
        )

    async def send(type_: str, obj: dict[str, Any]) -> None:
        await response.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")

    try:
        if since is None:
            items, last = state.snapshot(rt, namespace, match)
            for item in items:
                await send("ADDED", item)
        else:
            last = since
        next_bookmark = loop.time() + bookmark_interval
        while True:
            event = hub.event
            try:
                changes, head = state.changes_after(last, wanted)
            except Gone as gone:
                await send("ERROR", expired_status(gone.since, gone.oldest))
                break
            for change in changes:
                await send(change.type, present(change.obj))
            last = max(last, head)
            if hub.generation != generation:
                if hub.abrupt and raw.transport is not None:
                    raw.transport.close()
                    return response
                break
            now = loop.time()
            if deadline is not None and now >= deadline:
                break
            if bookmarks and now >= next_bookmark:
                await send(
                    "BOOKMARK",
                    {
                        "kind": rt.kind,
                        "apiVersion": rt.api_version,
                        "metadata": {"resourceVersion": str(last)},
                    },
                )
                next_bookmark = now + bookmark_interval
            wait = next_bookmark - now if bookmarks else None
            if deadline is not None:
                wait = deadline - now if wait is None else min(wait, deadline - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), wait)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away
    finally:
        hub.open_streams -= 1
    return response
