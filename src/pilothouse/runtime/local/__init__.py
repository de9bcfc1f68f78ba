"""The local runtime: model-server replicas as supervised processes on this machine (embedded mode).

``LocalRuntime`` is the entry point; the submodules are its parts (GPU allocation, process trees,
persisted records, the monitor loop, admission checks).
"""

from pilothouse.runtime.local.gpus import Capacity, GpuInfo
from pilothouse.runtime.local.runtime import LocalRuntime
from pilothouse.runtime.local.supervisor import Backoff

__all__ = ["Backoff", "Capacity", "GpuInfo", "LocalRuntime"]
