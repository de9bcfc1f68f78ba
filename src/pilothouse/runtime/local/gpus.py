"""Which accelerators this machine has, and which replica or job worker holds which device.

Two processes on one GPU fight over its memory and both fall over, so devices are handed out exclusively,
by index, the way the Kubernetes device plugin does it. Replicas and job workers draw from the same
allocator: one pool per machine. The allocator knows nothing about processes: the runtime releases a
holder's devices only once its whole process tree is gone (``handover`` adds the NVML check).

It does remember *when* each device became free, so that hand-over latency (release -> next start) and
idle time can be measured by whoever knows whether work was waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
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


class Capacity(dict[str, int]):
    """The schedulable totals per resource as the mapping itself (what ``JobRuntime.capacity`` promises:
    accelerator counts, plus ``cpu`` millicores and ``memory`` bytes where the runtime adds them), and the
    accelerator view as attributes: ``total`` and ``free`` device counts, ``gpus`` as NVML saw them.

    A ``dict`` subclass so that one ``LocalRuntime.capacity()`` serves both the job scheduler (a plain
    mapping) and the older callers that read ``.total``/``.free``.
    """

    def __init__(
        self,
        total: Mapping[str, int],
        free: Mapping[str, int],
        gpus: tuple[GpuInfo, ...] = (),
        host: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__({**total, **(host or {})})
        self.total: dict[str, int] = dict(total)
        self.free: dict[str, int] = dict(free)
        self.gpus: tuple[GpuInfo, ...] = gpus


DeviceKey = tuple[str, str]
"""(resource name, device index)."""


@dataclass(frozen=True)
class FreeSince:
    """When a device became free: wall clock (to show) and monotonic (to measure with)."""

    wall: float
    monotonic: float
    released: bool
    """False for a device free since the allocator was created (no hand-over happened)."""


class DeviceAllocator:
    """Exclusive allocation of device indices ("0", "1", ...) per resource name. Not thread-safe on its own:
    the runtime calls it under its lock."""

    def __init__(self, totals: Mapping[str, int], gpus: tuple[GpuInfo, ...] = ()) -> None:
        self._devices: dict[str, list[str]] = {name: [str(i) for i in range(n)] for name, n in totals.items()}
        self._holder: dict[DeviceKey, str] = {}
        now = FreeSince(time.time(), time.monotonic(), released=False)
        self._free_since: dict[DeviceKey, FreeSince] = {
            (name, d): now for name, devices in self._devices.items() for d in devices
        }
        self._grants: dict[str, dict[DeviceKey, FreeSince]] = {}
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
                since = self._free_since.pop((resource, device), None)
                if since is not None:
                    self._grants.setdefault(holder, {})[(resource, device)] = since
            out[resource] = chosen
        return out

    def granted(self, holder: str) -> dict[DeviceKey, FreeSince]:
        """Since when each device ``holder`` was given had been free (for hand-over latency)."""
        return dict(self._grants.get(holder, {}))

    def held_by(self, holder: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for (resource, device), h in sorted(self._holder.items()):
            if h == holder:
                out.setdefault(resource, []).append(device)
        return out

    def free_since(self) -> dict[str, dict[str, float]]:
        """Wall-clock time each free device became free, per resource (devices in use are absent)."""
        out: dict[str, dict[str, float]] = {name: {} for name in self._devices}
        for (resource, device), since in self._free_since.items():
            if (resource, device) not in self._holder and device in self._devices.get(resource, []):
                out[resource][device] = since.wall
        return out

    def reserve(self, holder: str, devices: Mapping[str, list[str]]) -> None:
        """Mark devices an adopted replica already uses (even ones beyond today's totals)."""
        for resource, ids in devices.items():
            for device in ids:
                current = self._holder.get((resource, device))
                if current is not None and current != holder:
                    log.warning("%s %s is held by both %s and %s", resource, device, current, holder)
                self._holder[(resource, device)] = holder
                self._free_since.pop((resource, device), None)

    def release(self, holder: str, devices: Iterable[DeviceKey] | None = None) -> None:
        """Give back all of ``holder``'s devices, or only ``devices`` of them."""
        only = set(devices) if devices is not None else None
        now = FreeSince(time.time(), time.monotonic(), released=True)
        for key in [k for k, h in self._holder.items() if h == holder and (only is None or k in only)]:
            del self._holder[key]
            self._free_since[key] = now
        if not any(h == holder for h in self._holder.values()):
            self._grants.pop(holder, None)


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
