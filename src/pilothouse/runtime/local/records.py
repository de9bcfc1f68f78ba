"""Replica records on disk, so a restarted control plane finds the replicas it left running.

The control plane may be SIGKILLed at any moment; model servers must survive that and not be started a
second time. Each replica therefore has a small JSON file (written atomically, see ``record_dir``)
holding everything needed to recognise its process again (pid *and* create time, since pids are reused)
and to restart it (the workload spec).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.api.modelendpoint import ModelSource, Resources
from pilothouse.runtime.local.record_dir import JsonRecordDir
from pilothouse.runtime.protocol import OwnerRef, WorkloadSpec

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


class RecordStore(JsonRecordDir[ReplicaRecord]):
    """One JSON file per replica under ``<runtime_dir>/replicas/``, oldest first on load."""

    def __init__(self, directory: Path) -> None:
        super().__init__(
            directory,
            what="replica",
            key=lambda r: r.replica_id,
            decode=ReplicaRecord.from_json,
            order=lambda r: (r.created_at, r.replica_id),
        )
