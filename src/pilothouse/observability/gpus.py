"""GPU telemetry through NVML: utilization, memory used and power per device, read at scrape time.

The NVML calls go through an injectable handle (the ``pynvml`` module satisfies :class:`NvmlApi`;
tests pass a fake), so the Prometheus side is tested without a GPU. Without NVML (no library, no
driver, no devices) :func:`open_nvml_telemetry` returns None and the control plane exports no GPU
series at all — an absent series, not a zero, is how Prometheus says "no such device".

A reading that one device does not support (power on some boards) is None and left out; a device
that fails entirely is skipped for that scrape, and logged once at debug level.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


class NvmlApi(Protocol):
    """The NVML functions telemetry needs, named as ``pynvml`` names them."""

    def nvmlDeviceGetCount(self) -> int: ...

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        """An object with ``gpu`` (percent of the last sample period a kernel ran)."""
        ...

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        """An object with ``used`` and ``total`` (bytes)."""
        ...

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        """Milliwatts."""
        ...


@dataclass(frozen=True)
class GpuReading:
    index: int
    utilization_ratio: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    power_watts: float | None


class GpuTelemetry(Protocol):
    def read(self) -> list[GpuReading]: ...


def _try(fn: Callable[[Any], Any], handle: Any) -> Any:
    try:
        return fn(handle)
    except Exception:  # NVMLError_NotSupported and friends: this reading is absent
        return None


class NvmlTelemetry:
    """Reads every device through ``nvml`` (already initialised); ``close`` is called on shutdown."""

    def __init__(self, nvml: NvmlApi, close: Callable[[], None] | None = None) -> None:
        self._nvml = nvml
        self._close = close

    def read(self) -> list[GpuReading]:
        nvml = self._nvml
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:
            log.debug("NVML device count failed: %s", exc)
            return []
        readings = []
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
            except Exception as exc:
                log.debug("NVML handle of GPU %d failed: %s", index, exc)
                continue
            util = _try(nvml.nvmlDeviceGetUtilizationRates, handle)
            memory = _try(nvml.nvmlDeviceGetMemoryInfo, handle)
            power = _try(nvml.nvmlDeviceGetPowerUsage, handle)
            readings.append(
                GpuReading(
                    index=index,
                    utilization_ratio=float(util.gpu) / 100.0 if util is not None else None,
                    memory_used_bytes=int(memory.used) if memory is not None else None,
                    memory_total_bytes=int(memory.total) if memory is not None else None,
                    power_watts=float(power) / 1000.0 if power is not None else None,
                )
            )
        return readings

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


def open_nvml_telemetry() -> NvmlTelemetry | None:
    """Telemetry from the real NVML, or None when NVML is unavailable or sees no device."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        log.debug("NVML unavailable; no GPU telemetry: %s", exc)
        return None

    def shutdown() -> None:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()

    try:
        count = int(pynvml.nvmlDeviceGetCount())
    except Exception:
        count = 0
    if count == 0:
        shutdown()
        return None
    nvml: NvmlApi = pynvml
    return NvmlTelemetry(nvml, shutdown)
