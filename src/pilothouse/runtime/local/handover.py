"""Clean GPU hand-over: a device goes back to the pool only once nothing of its last holder runs on it.

The runtime calls ``release`` after it has made sure the holder's whole process tree is gone. That is
all that can be checked for declared accelerators. For NVIDIA devices NVML can say more: a CUDA context
can outlive the process that made it for a moment (the driver tears it down asynchronously), and a
process of the holder that escaped the tree would show up there too. Handing such a device to the next
job gives it a GPU whose memory is still taken, so with NVML the device stays quarantined until
``nvmlDeviceGetComputeRunningProcesses`` lists no process of the holder on it.

"Of the holder" is decided without a pid snapshot of the tree: a listed process is the holder's if its
pid is one the runtime knows, or it still carries the holder's marker variable in its environment (every
descendant inherits it), or it is no longer a live process (a context that outlived its process: whose
it was cannot be proven, and it is exactly the case this check is for). Live processes of other users
or programs that merely share the machine do not block a hand-over.

The wait is bounded (``timeout``, 10 s by default): a driver that never lets go must not take a GPU out
of service silently forever, so after the timeout the device is released anyway with a warning that
names it and the pids still listed. Every release is stamped (``DeviceAllocator.free_since``); when a job
worker next gets the device, ``record_start`` turns the stamp into a hand-over latency sample.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil

from pilothouse.api.modelendpoint import DEFAULT_GPU_RESOURCE
from pilothouse.runtime.local.gpus import DeviceAllocator, DeviceKey
from pilothouse.runtime.protocol import HandoverSummary

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
MAX_SAMPLES = 256


class Nvml(Protocol):
    """The two NVML calls the hand-over check needs (the ``pynvml`` module satisfies it; tests pass a
    small fake object)."""

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> Sequence[Any]:
        """Objects with a ``pid`` attribute."""
        ...


def open_nvml() -> tuple[Nvml, Callable[[], None]] | None:
    """The real NVML, initialised, and the function that shuts it down; None when unavailable."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        log.debug("NVML unavailable; GPU hand-over checks process trees only: %s", exc)
        return None

    def shutdown() -> None:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()

    nvml: Nvml = pynvml
    return nvml, shutdown


@dataclass(frozen=True)
class HandoverSample:
    """One device going from its last holder to a job worker."""

    resource: str
    device: str
    released_at: float
    """Wall clock: the previous holder's tree was gone (and NVML clear)."""
    started_at: float
    """Wall clock: the job worker that got the device was started."""
    seconds: float
    """``started_at - released_at``, measured on the monotonic clock."""


@dataclass
class _Pending:
    holder: str
    keys: set[DeviceKey]
    pids: frozenset[int]
    marker: tuple[str, str] | None
    deadline: float
    since: float = field(default_factory=time.monotonic)


class DeviceHandover:
    """Releases holders' devices into the allocator once they are clean (see the module docstring).

    Not thread-safe: the runtime calls it under its lock, ``poll`` from the monitor loop.
    """

    def __init__(
        self,
        allocator: DeviceAllocator,
        nvml: Nvml | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allocator = allocator
        self._nvml = nvml
        self.timeout = timeout
        self._clock = clock
        self._pending: dict[str, _Pending] = {}
        self._samples: deque[HandoverSample] = deque(maxlen=MAX_SAMPLES)
        self._count = 0
        self._total = 0.0
        self._max = 0.0

    def release(self, holder: str, pids: Collection[int] = (), marker: tuple[str, str] | None = None) -> bool:
        """The holder's tree is gone: release its devices now if NVML agrees, else once it does (or the
        timeout passes). ``pids``: processes known to be the holder's; ``marker``: the (variable, value)
        its processes carry in their environment. True when everything was released right away."""
        devices = self._allocator.held_by(holder)
        keys = {(r, d) for r, ds in devices.items() for d in ds}
        pending = _Pending(holder, keys, frozenset(pids), marker, self._clock() + self.timeout)
        self._pending[holder] = pending
        self._check(pending)
        return holder not in self._pending

    def is_pending(self, holder: str) -> bool:
        return holder in self._pending

    def pending_devices(self) -> dict[str, set[DeviceKey]]:
        return {h: set(p.keys) for h, p in self._pending.items()}

    def poll(self) -> list[str]:
        """Re-check every quarantined device; the holders fully released by this call."""
        done: list[str] = []
        for pending in list(self._pending.values()):
            self._check(pending)
            if pending.holder not in self._pending:
                done.append(pending.holder)
        return done

    def record_start(self, holder: str, started_wall: float, started_monotonic: float) -> None:
        """A job worker holding ``holder``'s devices was started: sample the hand-over latency of each
        device that had been released by a previous holder."""
        for (resource, device), since in sorted(self._allocator.granted(holder).items()):
            if not since.released:
                continue
            seconds = max(0.0, started_monotonic - since.monotonic)
            self._samples.append(HandoverSample(resource, device, since.wall, started_wall, seconds))
            self._count += 1
            self._total += seconds
            self._max = max(self._max, seconds)

    def samples(self) -> list[HandoverSample]:
        """The most recent hand-overs, oldest first (at most ``MAX_SAMPLES``)."""
        return list(self._samples)

    def summary(self) -> HandoverSummary:
        """Every hand-over since the runtime started."""
        return HandoverSummary(self._count, self._total, self._max)

    # -- internals ----------------------------------------------------------------------------------------

    def _check(self, pending: _Pending) -> None:
        clean: set[DeviceKey] = set()
        lingering: dict[DeviceKey, list[int]] = {}
        for key in pending.keys:
            pids = self._lingering(key, pending)
            if pids:
                lingering[key] = pids
            else:
                clean.add(key)
        timed_out = self._clock() >= pending.deadline
        if timed_out:
            for (resource, device), pids in sorted(lingering.items()):
                log.warning(
                    "%s %s: NVML still lists compute processes %s of %s %.1fs after its processes were "
                    "gone; releasing it anyway",
                    resource,
                    device,
                    pids,
                    pending.holder,
                    self._clock() - pending.since,
                )
            clean |= set(lingering)
        if clean:
            self._allocator.release(pending.holder, clean)
            pending.keys -= clean
        if not pending.keys:
            self._pending.pop(pending.holder, None)
            self._allocator.release(pending.holder)  # anything held beyond what was known (adoption)

    def _lingering(self, key: DeviceKey, pending: _Pending) -> list[int]:
        """Pids NVML lists on the device that are (or may be) the holder's; [] when NVML cannot tell."""
        resource, device = key
        if self._nvml is None or resource != DEFAULT_GPU_RESOURCE or not device.isdigit():
            return []
        try:
            handle = self._nvml.nvmlDeviceGetHandleByIndex(int(device))
            listed = [int(p.pid) for p in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)]
        except Exception as exc:
            log.debug("NVML cannot list processes on %s %s: %s", resource, device, exc)
            return []
        return sorted(pid for pid in set(listed) if _belongs(pid, pending.pids, pending.marker))


def _belongs(pid: int, known: Collection[int], marker: tuple[str, str] | None) -> bool:
    if pid in known:
        return True
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        if marker is None:
            return False
        environ: Mapping[str, str] = proc.environ()
    except psutil.NoSuchProcess:
        return True  # a context that outlived its process
    except psutil.Error:
        return False  # another user's process: not ours to wait for
    return environ.get(marker[0]) == marker[1]
