"""A fake NVML (the handle ``NvmlTelemetry`` takes) and a scrape of the control plane's collector with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from fakes import FakeRuntime
from pilothouse.controllers.metrics import ControlPlaneCollector
from pilothouse.observability.gpus import NvmlTelemetry


class NotSupported(Exception):
    pass


@dataclass
class FakeNvml:
    """``count`` devices; device i is i*10 % busy, uses i GiB of 16, draws 100+i W (or no power reading)."""

    count: int = 2
    power: bool = True
    broken: set[int] = field(default_factory=set)

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        if index in self.broken:
            raise NotSupported(index)
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        return SimpleNamespace(gpu=handle * 10, memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        return SimpleNamespace(used=handle * 2**30, total=16 * 2**30, free=0)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        if not self.power:
            raise NotSupported("power")
        return (100 + handle) * 1000


class EmptyStore:
    def list(self, kind: str, namespace: str | None = None) -> Any:
        return SimpleNamespace(items=[], resource_version=0)


def gpu_exposition() -> str:
    registry = CollectorRegistry()
    registry.register(ControlPlaneCollector(EmptyStore(), FakeRuntime(), None, NvmlTelemetry(FakeNvml())))  # type: ignore[arg-type]
    return generate_latest(registry).decode()
