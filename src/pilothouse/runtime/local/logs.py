"""``tail -f`` over replica log files.

Replicas write straight into files (no pipe through the control plane), so their output survives a
control-plane restart and a crash message is still there after the process is gone. Following is polling:
portable, no inotify, and cheap at a tenth of a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import BinaryIO


def follow_files(
    list_files: Callable[[], list[tuple[str, Path]]],
    still_there: Callable[[], bool],
    *,
    prefix: bool,
    interval: float = 0.1,
) -> Generator[str, None, None]:
    """Yield lines (without newline) from the files ``list_files`` names, from their start, as they grow.

    New files are picked up as they appear. Ends once ``still_there()`` is false and everything written
    before that was yielded; closing the generator closes the files.
    """
    handles: dict[str, tuple[BinaryIO, bytearray]] = {}
    try:
        while True:
            alive = still_there()  # checked before reading: nothing written before removal is lost
            for replica_id, path in list_files():
                if replica_id not in handles:
                    try:
                        handles[replica_id] = (open(path, "rb"), bytearray())  # noqa: SIM115 - closed in finally
                    except FileNotFoundError:
                        continue
            progressed = False
            for replica_id, (handle, buffer) in handles.items():
                chunk = handle.read()
                if not chunk:
                    continue
                progressed = True
                buffer.extend(chunk)
                *lines, rest = bytes(buffer).split(b"\n")
                buffer[:] = rest
                for line in lines:
                    text = line.decode("utf-8", errors="replace")
                    yield f"[{replica_id}] {text}" if prefix else text
            if not progressed and not alive:
                for replica_id, (_, buffer) in handles.items():
                    if buffer:
                        text = buffer.decode("utf-8", errors="replace")
                        yield f"[{replica_id}] {text}" if prefix else text
                return
            if not progressed:
                time.sleep(interval)
    finally:
        for handle, _ in handles.values():
            handle.close()
