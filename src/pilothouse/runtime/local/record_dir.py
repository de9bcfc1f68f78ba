"""A directory of small JSON records, one file each, that survives a control plane killed at any moment.

Replica records and job records both need the same things: a write that a crash leaves either old or
new (temp file + fsync + ``os.replace``), files readable only by their owner (a workload's environment
may hold secrets), and a load that drops what it cannot read instead of refusing to start. Each kind of
record says only how to name, decode and order itself.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class JsonRecord(Protocol):
    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=JsonRecord)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` so that a reader (or a crash) sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp: mode 0600 (env may hold secrets)
            json.dump(data, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class JsonRecordDir(Generic[R]):
    """One ``<key>.json`` per record under ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        what: str,
        key: Callable[[R], str],
        decode: Callable[[dict[str, Any]], R],
        order: Callable[[R], Any],
    ) -> None:
        self.directory = directory
        self._what = what
        self._key = key
        self._decode = decode
        self._order = order
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def save(self, record: R) -> None:
        write_json_atomic(self.path(self._key(record)), record.to_json())

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def load_all(self) -> list[R]:
        """Every readable record, in ``order``; unreadable ones are logged and removed, as are temp files
        a crash left behind."""
        records: list[R] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                records.append(self._decode(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("dropping unreadable %s record %s: %s", self._what, path, exc)
                path.unlink(missing_ok=True)
        for stale in self.directory.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        records.sort(key=self._order)
        return records
