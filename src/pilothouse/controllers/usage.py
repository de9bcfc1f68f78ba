"""Usage readings for metering: what a replica's or worker's process tree uses right now.

``PsutilSampler`` reads CPU (cores = percent / 100) and resident memory of a process and its children;
GPU utilization and GPU memory come from NVML when it is present (``nvml=None`` skips them: no GPU, or
no driver). psutil's CPU percent is measured between two calls on the same ``Process`` object, so the
sampler keeps one per pid and reports no CPU for a process seen for the first time (unknown, not zero:
the cost core then charges the request).

The metering controller depends on the ``UsageSampler`` protocol only; tests pass a fake.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import psutil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Usage:
    cpu_cores: Decimal | None = None
    memory_bytes: Decimal | None = None
    gpu_utilization: Decimal | None = None
    """Percent, mean over the devices."""
    gpu_memory_bytes: Decimal | None = None

    def as_map(self) -> dict[str, str]:
        return {k: str(v) for k, v in vars(self).items() if v is not None}


class UsageSampler(Protocol):
    def sample(self, pid: int, devices: Sequence[str]) -> Usage | None:
        """What the process tree rooted at ``pid`` uses now (``devices``: its GPU indices); None if gone."""
        ...


class PsutilSampler:
    def __init__(self, nvml: Any | None = None) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._nvml = nvml

    @classmethod
    def with_nvml(cls) -> PsutilSampler:
        """A sampler using NVML when the library and a driver are present."""
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as exc:
            log.debug("NVML unavailable; metering samples no GPU usage: %s", exc)
            return cls(None)
        return cls(pynvml)

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None

    def _process(self, pid: int) -> tuple[psutil.Process, bool]:
        known = self._procs.get(pid)
        if known is not None and known.is_running():
            return known, True
        proc = psutil.Process(pid)
        self._procs[pid] = proc
        return proc, False

    def sample(self, pid: int, devices: Sequence[str]) -> Usage | None:
        try:
            root, primed = self._process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            self._procs.pop(pid, None)
            return None
        cpu = Decimal(0)
        memory = 0
        pids: set[int] = set()
        for member in tree:
            try:
                proc, member_primed = (root, primed) if member.pid == pid else self._process(member.pid)
                percent = proc.cpu_percent(interval=None)
                memory += proc.memory_info().rss
                pids.add(proc.pid)
            except psutil.Error:
                continue
            if member_primed:
                cpu += Decimal(str(percent)) / 100
        if len(self._procs) > 256:
            self._forget_dead()
        gpu_util, gpu_memory = self._gpu(devices, pids)
        return Usage(
            cpu_cores=cpu if primed else None,
            memory_bytes=Decimal(memory),
            gpu_utilization=gpu_util,
            gpu_memory_bytes=gpu_memory,
        )

    def _forget_dead(self) -> None:
        for pid in [p for p, proc in self._procs.items() if not proc.is_running()]:
            del self._procs[pid]

    def _gpu(self, devices: Sequence[str], pids: set[int]) -> tuple[Decimal | None, Decimal | None]:
        indices = [int(d) for d in devices if d.isdigit()]  # NVIDIA GPUs are bare indices
        if self._nvml is None or not indices:
            return None, None
        try:
            utilization = Decimal(0)
            used = 0
            for index in indices:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                utilization += Decimal(int(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
                for proc in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if proc.pid in pids and proc.usedGpuMemory is not None:
                        used += int(proc.usedGpuMemory)
        except Exception as exc:
            log.debug("NVML reading failed: %s", exc)
            return None, None
        return min(Decimal(100), utilization / len(indices)), Decimal(used)
