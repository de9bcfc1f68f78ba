"""The local runtime: model-server replicas and job gangs as supervised processes on this machine
(embedded mode).

``LocalRuntime`` is the entry point; the submodules are its parts (GPU allocation and hand-over, process
trees, persisted records, the monitor loop, admission checks, job gangs).
"""

from typing import TYPE_CHECKING

from pilothouse.runtime.local.gpus import Capacity, GpuInfo
from pilothouse.runtime.local.runtime import LocalRuntime
from pilothouse.runtime.local.supervisor import Backoff

if TYPE_CHECKING:
    from pilothouse.runtime.protocol import JobRuntime, Runtime

    def _conforms(runtime: LocalRuntime) -> tuple[Runtime, JobRuntime]:
        """mypy proves here that one ``LocalRuntime`` is both a ``Runtime`` and a ``JobRuntime``."""
        return runtime, runtime


__all__ = ["Backoff", "Capacity", "GpuInfo", "LocalRuntime"]
