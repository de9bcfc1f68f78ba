"""Replica records on disk, so a restarted control plane finds the replicas it left running.

The control plane may be SIGKILLed at any moment; model servers must survive that and not be started a
second time. Each replica therefore has a small JSON file (written atomically: temp file + ``os.replace``)
holding everything needed to recognise its process again (pid *and* create time, since pids are reused)
and to restart it (the workload spec).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.api.modelendpoint import ModelSource, Resources
from pilothouse.runtime.protocol import OwnerRef, WorkloadSpec

log = logging.getLogger(__name__)

RECORD_VERSION = 1


@dataclass
class ReplicaRecord:
    replica_id: str
    owner: OwnerRef
    revision: int
    model: dict[str, Any]
    resources: dict[str, Any]
    model_name: str
    env: dict[str, str]
    log_path: str
    termination_log_path: str
    created_at: float
    pid: int | None = None
    create_time: float | None = None
    port: int | None = None
    url: str | None = None
    devices: dict[str, list[str]] = field(default_factory=dict)
    restarts: int = 0

    def workload(self, replicas: int = 1) -> WorkloadSpec:
        return WorkloadSpec(
            owner=self.owner,
            revision=self.revision,
            replicas=replicas,
            model=ModelSource.model_validate(self.model),
            resources=Resources.model_validate(self.resources),
            model_name=self.model_name,
            env=dict(self.env),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = RECORD_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReplicaRecord:
        data = dict(data)
        data.pop("version", None)
        owner = OwnerRef(**data.pop("owner"))
        return cls(owner=owner, **data)


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


class RecordStore:
    """One JSON file per replica under ``<runtime_dir>/replicas/``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, replica_id: str) -> Path:
        return self.directory / f"{replica_id}.json"

    def save(self, record: ReplicaRecord) -> None:
        write_json_atomic(self.path(record.replica_id), record.to_json())

    def delete(self, replica_id: str) -> None:
        self.path(replica_id).unlink(missing_ok=True)

    def load_all(self) -> list[ReplicaRecord]:
        """Every readable record, oldest first; unreadable ones are logged and removed."""
        records: list[ReplicaRecord] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                records.append(ReplicaRecord.from_json(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("dropping unreadable replica record %s: %s", path, exc)
                path.unlink(missing_ok=True)
        for stale in self.directory.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        records.sort(key=lambda r: (r.created_at, r.replica_id))
        return records
