"""Which accelerators this machine has, and which replica holds which device.

Two replicas on one GPU fight over its memory and both fall over, so devices are handed out exclusively,
by index, the way the Kubernetes device plugin does it. The allocator knows nothing about processes: the
runtime releases a replica's devices only once its whole process tree is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from pilothouse.api.modelendpoint import DEFAULT_GPU_RESOURCE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuInfo:
    """One NVIDIA device as NVML reports it."""

    index: int
    name: str
    memory_total_bytes: int
    uuid: str = ""


def discover_nvidia_gpus() -> list[GpuInfo]:
    """The NVIDIA GPUs NVML can see; none when the library or driver is missing or NVML fails."""
    try:
        import pynvml
    except ImportError:  # pragma: no cover - nvidia-ml-py is a dependency
        return []
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no GPUs here
        log.debug("NVML unavailable, assuming no GPUs: %s", exc)
        return []
    gpus: list[GpuInfo] = []
    try:
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                uuid = pynvml.nvmlDeviceGetUUID(handle)
            except Exception:
                uuid = ""
            gpus.append(
                GpuInfo(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_total_bytes=int(memory.total),
                    uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                )
            )
    except Exception as exc:
        log.warning("NVML failed while listing GPUs: %s", exc)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            log.debug("nvmlShutdown failed", exc_info=True)
    return gpus


@dataclass(frozen=True)
class Capacity:
    """Totals and free counts per accelerator resource name (``nvidia.com/gpu``)."""

    total: dict[str, int]
    free: dict[str, int]
    gpus: tuple[GpuInfo, ...] = ()


class DeviceAllocator:
    """Exclusive allocation of device indices ("0", "1", ...) per resource name. Not thread-safe on its own:
    the runtime calls it under its lock."""

    def __init__(self, totals: Mapping[str, int], gpus: tuple[GpuInfo, ...] = ()) -> None:
        self._devices: dict[str, list[str]] = {name: [str(i) for i in range(n)] for name, n in totals.items()}
        self._holder: dict[tuple[str, str], str] = {}
        self.gpus = gpus

    @classmethod
    def from_declared_or_discovered(cls, declared: Mapping[str, int] | None) -> DeviceAllocator:
        if declared is not None:
            return cls({k: v for k, v in declared.items() if v > 0})
        gpus = tuple(discover_nvidia_gpus())
        return cls({DEFAULT_GPU_RESOURCE: len(gpus)} if gpus else {}, gpus)

    @property
    def totals(self) -> dict[str, int]:
        return {name: len(devices) for name, devices in self._devices.items()}

    def free_devices(self, resource: str) -> list[str]:
        return [d for d in self._devices.get(resource, []) if (resource, d) not in self._holder]

    def capacity(self) -> Capacity:
        return Capacity(
            total=self.totals,
            free={name: len(self.free_devices(name)) for name in self._devices},
            gpus=self.gpus,
        )

    def shortage(self, wanted: Mapping[str, int]) -> str | None:
        """None if ``wanted`` can be allocated now, else why not: 'needs 2 nvidia.com/gpu, 1 free of 4'."""
        for resource, count in wanted.items():
            free = len(self.free_devices(resource))
            if count > free:
                total = len(self._devices.get(resource, []))
                return f"needs {count} {resource}, {free} free of {total}"
        return None

    def allocate(self, holder: str, wanted: Mapping[str, int]) -> dict[str, list[str]] | None:
        """Give ``holder`` the lowest free devices of each resource, all or nothing."""
        if self.shortage(wanted) is not None:
            return None
        out: dict[str, list[str]] = {}
        for resource, count in wanted.items():
            if count <= 0:
                continue
            chosen = self.free_devices(resource)[:count]
            for device in chosen:
                self._holder[(resource, device)] = holder
            out[resource] = chosen
        return out

    def reserve(self, holder: str, devices: Mapping[str, list[str]]) -> None:
        """Mark devices an adopted replica already uses (even ones beyond today's totals)."""
        for resource, ids in devices.items():
            for device in ids:
                current = self._holder.get((resource, device))
                if current is not None and current != holder:
                    log.warning("%s %s is held by both %s and %s", resource, device, current, holder)
                self._holder[(resource, device)] = holder

    def release(self, holder: str) -> None:
        for key in [k for k, h in self._holder.items() if h == holder]:
            del self._holder[key]


def cuda_visible_devices(devices: Mapping[str, list[str]]) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value: the NVIDIA indices, or "" so a CPU replica sees no GPU at all."""
    return ",".join(devices.get(DEFAULT_GPU_RESOURCE, []))


def device_labels(devices: Mapping[str, list[str]]) -> tuple[str, ...]:
    """Devices as ``ReplicaState.devices`` shows them: NVIDIA GPU indices bare, others as ``name:index``."""
    out: list[str] = list(devices.get(DEFAULT_GPU_RESOURCE, []))
    for resource in sorted(devices):
        if resource != DEFAULT_GPU_RESOURCE:
            out.extend(f"{resource}:{d}" for d in devices[resource])
    return tuple(out)
