"""``LocalRuntime``: the ``Runtime`` and ``JobRuntime`` contracts implemented with processes on this machine.

This is what makes the embedded mode a real platform rather than a demo: replicas are supervised
(restarted with backoff), get exclusive GPUs, are stopped with their whole process tree, and survive a
control-plane crash (records on disk are adopted by the next runtime, never duplicated). All state sits
behind one lock; the monitor thread (``supervisor``) does the watching and calls ``on_change`` callbacks
outside the lock.

Jobs (gangs of training/batch workers) live in ``jobs`` and draw from the same device pool; devices of
replicas and workers alike go back to the pool through ``handover`` (tree gone, then NVML clear).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import string
import sys
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from pilothouse.api.errors import FieldProblem
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.runtime.local import admission, launch
from pilothouse.runtime.local.gpus import Capacity, DeviceAllocator
from pilothouse.runtime.local.handover import (
    DEFAULT_TIMEOUT,
    DeviceHandover,
    HandoverSample,
    Nvml,
    open_nvml,
)
from pilothouse.runtime.local.jobs import LocalJobs
from pilothouse.runtime.local.logs import follow_files
from pilothouse.runtime.local.process import (
    describe_exit,
    disown,
    find_by_env,
    is_alive,
    kill_all,
    kill_group_leftovers,
    kill_tree,
    same_process,
    spawn,
)
from pilothouse.runtime.local.records import RecordStore, ReplicaRecord
from pilothouse.runtime.local.replica import Replica
from pilothouse.runtime.local.supervisor import Backoff, Monitor, probe, read_termination_log
from pilothouse.runtime.protocol import (
    HandoverSummary,
    JobRun,
    JobRunState,
    NotSupported,
    ReplicaPhase,
    ReplicaState,
    WorkloadSpec,
)

log = logging.getLogger(__name__)

_ID_ALPHABET = string.ascii_lowercase + string.digits
_STOP_ORDER = {"Pending": 0, "Failed": 1, "Terminating": 2, "Starting": 3, "Ready": 4}


def _short_random(n: int = 5) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(n))


def _kill_leftovers(record: ReplicaRecord) -> None:
    """SIGKILL whatever a replica whose leader exited left behind: the rest of its process group (unless
    the leader's pid was reused since) and any process that inherited its environment."""
    kill_group_leftovers(record.pid, record.create_time)
    kill_all(find_by_env(launch.TERMINATION_LOG_ENV, record.termination_log_path))


class LocalRuntime:
    """Runs model-server replicas and job gangs as supervised process trees on this machine.

    ``nvml``: what the GPU hand-over asks which processes still use a device (default: the real NVML
    when GPUs were discovered, none for declared accelerators); ``handover_timeout``: how long a device
    NVML still shows a process of its last holder on stays out of the pool (then it is released with a
    warning).
    """

    name = "local"
    runs_images = False

    def __init__(
        self,
        runtime_dir: Path,
        accelerators: dict[str, int] | None = None,
        python: str = sys.executable,
        probe_interval: float = 0.2,
        *,
        grace_period: float = 5.0,
        backoff: Backoff | None = None,
        liveness_interval: float = 1.0,
        liveness_failures: int = 3,
        probe_timeout: float = 1.0,
        start_monitor: bool = True,
        nvml: Nvml | None = None,
        handover_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.runtime_dir = Path(runtime_dir)
        self.python = python
        self.probe_interval = probe_interval
        self.grace_period = grace_period
        self.backoff = backoff or Backoff()
        self.liveness_interval = liveness_interval
        self.liveness_failures = liveness_failures
        self.logs_dir = self.runtime_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._records = RecordStore(self.runtime_dir / "replicas")
        self._allocator = DeviceAllocator.from_declared_or_discovered(accelerators)
        self._nvml_shutdown: Callable[[], None] | None = None
        if nvml is None and self._allocator.gpus:
            opened = open_nvml()
            if opened is not None:
                nvml, self._nvml_shutdown = opened
        self._handover = DeviceHandover(self._allocator, nvml, handover_timeout)
        self._lock = threading.RLock()
        self._replicas: dict[str, Replica] = {}
        self._changed: set[str] = set()
        self._callbacks: list[Callable[[str], None]] = []
        self._closed = False
        self._client = httpx.Client(
            timeout=httpx.Timeout(probe_timeout, connect=min(probe_timeout, 0.5)), trust_env=False
        )
        self._monitor = Monitor(self._tick, probe_interval)
        self._jobs = LocalJobs(
            self.runtime_dir,
            self._lock,
            self._allocator,
            self._handover,
            grace_period=grace_period,
            changed=self._mark_changed,
            wake=self._monitor.wake,
        )
        self._adopt_records()
        self._jobs.adopt()
        if start_monitor:
            self._monitor.start()

    # -- the Runtime protocol -------------------------------------------------------------------------

    def admit(self, endpoint: ModelEndpoint) -> list[FieldProblem]:
        with self._lock:
            totals = self._allocator.totals
        return admission.admit(endpoint, totals)

    def ensure(self, workload: WorkloadSpec) -> None:
        if workload.model.kind == "image":
            raise NotSupported(admission.IMAGE_NOT_SUPPORTED)
        victims: list[Replica] = []
        with self._lock:
            self._check_open()
            current = [
                r
                for r in self._replicas.values()
                if r.owner_uid == workload.owner.uid and r.revision == workload.revision and not r.stopping
            ]
            wanted = max(workload.replicas, 0)
            for _ in range(wanted - len(current)):
                replica = self._new_replica(workload)
                self._start(replica)
            if len(current) > wanted:
                ranked = sorted(current, key=lambda r: (_STOP_ORDER[r.phase], -r.record.created_at))
                victims = ranked[: len(current) - wanted]
                for victim in victims:
                    self._mark_stopping(victim)
            if len(current) != wanted:
                self._changed.add(workload.owner.uid)
        self._monitor.wake()
        self._stop(victims)

    def stop_replicas(self, owner_uid: str, replica_ids: list[str]) -> None:
        wanted = set(replica_ids)
        with self._lock:
            victims = [
                r
                for r in self._replicas.values()
                if r.owner_uid == owner_uid and r.record.replica_id in wanted and not r.stopping
            ]
            for victim in victims:
                self._mark_stopping(victim)
            if victims:
                self._changed.add(owner_uid)
        self._stop(victims)

    def remove(self, owner_uid: str, revision: int | None = None) -> None:
        with self._lock:
            matching = [
                r
                for r in self._replicas.values()
                if r.owner_uid == owner_uid and (revision is None or r.revision == revision)
            ]
            victims = [r for r in matching if not r.stopping]
            in_progress = [r for r in matching if r.stopping]
            for victim in victims:
                self._mark_stopping(victim)
            if victims:
                self._changed.add(owner_uid)
        self._stop(victims)
        for replica in in_progress:  # someone else is stopping them: removal is done when they are gone
            replica.gone.wait(self.grace_period + 15.0)

    def observe(self, owner_uid: str) -> list[ReplicaState]:
        with self._lock:
            states = [r.state() for r in self._replicas.values() if r.owner_uid == owner_uid]
        return sorted(states, key=lambda s: s.id)

    def owners(self) -> set[str]:
        with self._lock:
            return {r.owner_uid for r in self._replicas.values()}

    def log_files(self, owner_uid: str, replica: str | None = None) -> list[tuple[str, Path]]:
        """(replica id, log path), oldest replica first; for an owner with no replicas left, the log files
        still on disk (so the output of a removed replica can still be read)."""
        with self._lock:
            current = sorted(
                (r for r in self._replicas.values() if r.owner_uid == owner_uid),
                key=lambda r: (r.record.created_at, r.id),
            )
            pairs = [(r.id, Path(r.record.log_path)) for r in current]
        if not pairs:
            owner_dir = self.logs_dir / owner_uid
            files = sorted(owner_dir.glob("*.log"), key=lambda p: (p.stat().st_mtime, p.name))
            pairs = [(p.stem, p) for p in files]
        if replica is not None:
            pairs = [(rid, path) for rid, path in pairs if rid == replica]
        return pairs

    def follow_logs(
        self, owner_uid: str, replica: str | None = None, *, prefix: bool | None = None
    ) -> Generator[str, None, None]:
        """Lines of the replica logs, from the start, then as they are written; ends when the replica(s)
        are removed. ``prefix`` (default: when following more than one replica) puts ``[replica-id]``
        before each line."""

        def list_files() -> list[tuple[str, Path]]:
            with self._lock:
                return [
                    (r.id, Path(r.record.log_path))
                    for r in sorted(self._replicas.values(), key=lambda r: (r.record.created_at, r.id))
                    if r.owner_uid == owner_uid and (replica is None or r.id == replica)
                ]

        def still_there() -> bool:
            with self._lock:
                if self._closed:
                    return False
                return any(
                    r.owner_uid == owner_uid and (replica is None or r.id == replica)
                    for r in self._replicas.values()
                )

        initial = list_files() or self.log_files(owner_uid, replica)
        if prefix is None:
            prefix = replica is None and len(initial) > 1

        def files() -> list[tuple[str, Path]]:
            return list_files() or initial

        return follow_files(files, still_there, prefix=prefix)

    def on_change(self, callback: Callable[[str], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def close(self, stop_workloads: bool = True) -> None:
        """Stop the monitor; with ``stop_workloads`` also every replica, else leave them running (their
        records let the next runtime on this directory adopt them)."""
        with self._lock:
            if self._closed:
                return
        self._monitor.stop()
        victims: list[Replica] = []
        with self._lock:
            if stop_workloads:
                self._jobs.stop_all()  # their grace periods run alongside the replicas'
                victims = [r for r in self._replicas.values() if not r.stopping]
                for victim in victims:
                    self._mark_stopping(victim)
        self._stop(victims)
        self._jobs.close(stop_workloads)
        with self._lock:
            self._closed = True
            for replica in list(self._replicas.values()):
                if replica.child is not None:
                    self._records.save(replica.record)
                    disown(replica.child)
                    replica.child = None
            if not stop_workloads:
                self._replicas.clear()
        self._client.close()
        if self._nvml_shutdown is not None:
            self._nvml_shutdown()

    # -- the JobRuntime protocol (``jobs.LocalJobs`` does the work) -----------------------------------------

    def nodes(self) -> list[dict[str, int]]:
        """One machine: ``capacity`` is all of it, so there are no nodes to fit a worker into."""
        return []

    def capacity(self) -> Capacity:
        """Totals per resource as a mapping (accelerators, ``cpu`` millicores, ``memory`` bytes: the
        ``JobRuntime`` contract), with the accelerator view as ``.total``/``.free``/``.gpus``. Only
        accelerators are enforced here; cpu and memory are for the scheduler (no cgroups locally)."""
        host = {
            "cpu": (psutil.cpu_count(logical=True) or 1) * 1000,
            "memory": int(psutil.virtual_memory().total),
        }
        with self._lock:
            devices = self._allocator.capacity()
        return Capacity(devices.total, devices.free, devices.gpus, host)

    def start_job(self, run: JobRun) -> None:
        """Start the attempt's gang (all or nothing); ``InsufficientResources`` if its devices are not all
        free; ``jobs.JobStillRunning`` if a previous attempt has not finished (stop it first)."""
        self._jobs.start(run)

    def stop_job(self, owner_uid: str, grace_seconds: float) -> None:
        self._jobs.stop(owner_uid, grace_seconds)

    def observe_job(self, owner_uid: str) -> JobRunState | None:
        return self._jobs.observe(owner_uid)

    def forget_job(self, owner_uid: str) -> None:
        self._jobs.forget(owner_uid)

    def job_owners(self) -> set[str]:
        return self._jobs.owners()

    def job_log_files(self, owner_uid: str, worker: int | None = None) -> list[tuple[str, Path]]:
        return self._jobs.log_files(owner_uid, worker)

    # -- beyond the protocols ---------------------------------------------------------------------------

    def handover_latencies(self) -> list[HandoverSample]:
        """Recent device hand-overs to job workers (release by the last holder -> worker start)."""
        with self._lock:
            return self._handover.samples()

    def handover_summary(self) -> HandoverSummary:
        with self._lock:
            return self._handover.summary()

    def free_devices_since(self) -> dict[str, dict[str, float]]:
        """Per resource, each free device and the wall-clock time it became free (idle accounting)."""
        with self._lock:
            return self._allocator.free_since()

    def replica(self, replica_id: str) -> ReplicaState | None:
        with self._lock:
            found = self._replicas.get(replica_id)
            return found.state() if found is not None else None

    # -- internals (``_lock`` held unless said otherwise) -------------------------------------------------

    def _mark_changed(self, owner_uid: str) -> None:
        self._changed.add(owner_uid)  # not ``self._changed.add``: the set is swapped at every dispatch

    def _check_open(self) -> None:
        if self._closed or self._monitor.stopped:
            raise RuntimeError("the local runtime is closed")

    def _new_replica(self, workload: WorkloadSpec) -> Replica:
        while True:
            replica_id = f"{workload.owner.name}-{workload.revision}-{_short_random()}"
            if replica_id not in self._replicas and not self._records.path(replica_id).exists():
                break
        log_dir = self.logs_dir / workload.owner.uid
        log_dir.mkdir(parents=True, exist_ok=True)
        record = ReplicaRecord(
            replica_id=replica_id,
            owner=workload.owner,
            revision=workload.revision,
            model=workload.model.model_dump(mode="json", exclude_none=True),
            resources=workload.resources.model_dump(mode="json", exclude_none=True),
            model_name=workload.model_name,
            env=dict(workload.env),
            log_path=str(log_dir / f"{replica_id}.log"),
            termination_log_path=str(self.runtime_dir / "termination" / f"{replica_id}.log"),
            created_at=time.time(),
        )
        replica = Replica(record=record, workload=workload)
        self._replicas[replica_id] = replica
        self._records.save(record)
        return replica

    def _set(self, replica: Replica, phase: ReplicaPhase, reason: str = "", message: str = "") -> None:
        before = (replica.phase, replica.reason, replica.message, replica.record.restarts)
        replica.phase = phase
        replica.reason = reason
        replica.message = message
        if (replica.phase, replica.reason, replica.message, replica.record.restarts) != before:
            self._changed.add(replica.owner_uid)

    def _start(self, replica: Replica) -> None:
        """Start (or restart) ``replica`` if it can get its devices; else leave it Pending."""
        wanted = replica.workload.resources.accelerators
        if not replica.has_devices:
            devices = self._allocator.allocate(replica.id, wanted)
            if devices is None:
                shortage = self._allocator.shortage(wanted) or "accelerators are not available"
                self._set(replica, "Pending", "InsufficientAccelerators", shortage)
                return
            replica.record.devices = devices
            replica.has_devices = True
        record = replica.record
        termination_log = Path(record.termination_log_path)
        termination_log.parent.mkdir(parents=True, exist_ok=True)
        termination_log.unlink(missing_ok=True)
        if replica.started:
            record.restarts += 1
        replica.started = True
        replica.generation += 1
        replica.probe_failures = 0
        replica.ready_since = None
        try:
            plan = launch.prepare(
                replica.workload,
                python=self.python,
                replica_id=replica.id,
                devices=record.devices,
                termination_log=termination_log,
            )
        except OSError as exc:
            self._failed_to_start(replica, f"cannot prepare the replica: {exc}")
            return
        try:
            spawned = spawn(plan.argv, plan.env, Path(record.log_path), plan.pass_fds)
        except OSError as exc:
            self._failed_to_start(replica, f"cannot run {plan.argv[0]!r}: {exc}")
            return
        finally:
            plan.close()
        replica.child = spawned.proc
        replica.adopted = None
        replica.readiness_url = plan.readiness_url
        record.pid = spawned.proc.pid
        record.create_time = spawned.create_time
        record.port = plan.port
        record.url = plan.url
        self._records.save(record)
        self._set(replica, "Starting")

    def _failed_to_start(self, replica: Replica, message: str) -> None:
        with contextlib.suppress(OSError), open(replica.record.log_path, "a", encoding="utf-8") as out:
            out.write(f"pilothouse: {message}\n")
        self._schedule_restart(replica, "StartFailed", message, exit_code=None)

    def _schedule_restart(self, replica: Replica, reason: str, message: str, exit_code: int | None) -> None:
        now = time.monotonic()
        ready_for = now - replica.ready_since if replica.ready_since is not None else None
        replica.backoff = self.backoff.next(replica.backoff, ready_for)
        replica.next_start_at = now + replica.backoff
        replica.child = None
        replica.adopted = None
        replica.ready_since = None
        replica.last_exit_code = exit_code
        self._set(replica, "Failed", reason, f"{message}; restarting in {replica.backoff:g}s")

    def _mark_stopping(self, replica: Replica) -> None:
        replica.stopping = True
        self._set(replica, "Terminating", replica.reason, replica.message)
        self._changed.add(replica.owner_uid)

    def _stop(self, victims: list[Replica]) -> None:
        """Kill the victims' process trees (lock NOT held), then forget them and free their devices."""
        if not victims:
            return
        if len(victims) == 1:
            self._kill(victims[0])
        else:
            with ThreadPoolExecutor(max_workers=min(len(victims), 16)) as pool:
                list(pool.map(self._kill, victims))
        with self._lock:
            for victim in victims:
                pids = [victim.record.pid] if victim.record.pid else []
                marker = (launch.TERMINATION_LOG_ENV, victim.record.termination_log_path)
                self._handover.release(victim.id, pids, marker)
                self._replicas.pop(victim.id, None)
                self._records.delete(victim.id)
                Path(victim.record.termination_log_path).unlink(missing_ok=True)
                self._changed.add(victim.owner_uid)
                victim.gone.set()
        self._monitor.wake()

    def _kill(self, replica: Replica) -> None:
        """Lock NOT held: the replica is ``stopping`` so nothing else touches its process."""
        pid, child, adopted = replica.record.pid, replica.child, replica.adopted
        if pid is None or (child is None and adopted is None):
            return
        strays = find_by_env(launch.TERMINATION_LOG_ENV, replica.record.termination_log_path)
        code = kill_tree(pid, replica.record.create_time, self.grace_period, child, strays)
        replica.child = None
        replica.adopted = None
        if code is not None:
            replica.last_exit_code = code

    def _adopt_records(self) -> None:
        """Take over the replicas an earlier runtime on this directory left running; drop dead records."""
        for record in self._records.load_all():
            proc = same_process(record.pid, record.create_time or 0.0) if record.pid else None
            if proc is None:
                self._drop_dead_record(record)
                continue
            try:
                workload = record.workload()
            except ValueError as exc:
                log.warning("cannot restore replica %s (%s): stopping it", record.replica_id, exc)
                kill_tree(proc.pid, record.create_time, self.grace_period)
                self._records.delete(record.replica_id)
                continue
            replica = Replica(record=record, workload=workload, adopted=proc, started=True, has_devices=True)
            if record.url:
                replica.readiness_url = launch.readiness_url(record.url, workload.model.readinessPath)
            replica.phase = "Starting"
            replica.generation = 1
            self._allocator.reserve(record.replica_id, record.devices)
            self._replicas[record.replica_id] = replica
            self._changed.add(record.owner.uid)
            log.info("adopted replica %s (pid %s)", record.replica_id, record.pid)

    def _drop_dead_record(self, record: ReplicaRecord) -> None:
        _kill_leftovers(record)
        self._records.delete(record.replica_id)

    # -- the monitor loop ------------------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        probes: list[tuple[Replica, int, str]] = []
        with self._lock:
            if self._closed:
                return
            self._handover.poll()
            self._jobs.tick()
            for replica in sorted(self._replicas.values(), key=lambda r: (r.record.created_at, r.id)):
                if replica.stopping:
                    continue
                if replica.running:
                    self._check_exit(replica)
                if not replica.running:
                    if replica.phase in ("Pending", "Failed") and now >= replica.next_start_at:
                        self._start(replica)
                    continue
                if replica.readiness_url is None:
                    continue
                if replica.phase == "Starting" or now - replica.last_probe_at >= self.liveness_interval:
                    replica.last_probe_at = now
                    probes.append((replica, replica.generation, replica.readiness_url))
        results = [(replica, generation, *probe(self._client, url)) for replica, generation, url in probes]
        with self._lock:
            for replica, generation, ok, why in results:
                if replica.stopping or not replica.running or replica.generation != generation:
                    continue
                self._apply_probe(replica, ok, why)
        self._dispatch_changes()

    def _check_exit(self, replica: Replica) -> None:
        exit_code: int | None = None
        if replica.child is not None:
            exit_code = replica.child.poll()
            if exit_code is None:
                return
            how = describe_exit(exit_code)
        else:
            assert replica.adopted is not None
            if is_alive(replica.adopted):
                return
            how = "exited (exit code unknown: the process was adopted)"
        _kill_leftovers(replica.record)
        termination = read_termination_log(Path(replica.record.termination_log_path))
        crash_looping = replica.backoff > 0 and (
            replica.ready_since is None or time.monotonic() - replica.ready_since < self.backoff.reset_after
        )
        reason = "CrashLoopBackOff" if crash_looping else "Error"
        message = how
        if termination is not None:
            reason = termination.reason or reason
            message = f"{termination.message} ({how})"
        self._schedule_restart(replica, reason, message, exit_code)

    def _apply_probe(self, replica: Replica, ok: bool, why: str) -> None:
        if ok:
            replica.probe_failures = 0
            if replica.phase != "Ready":
                replica.ready_since = time.monotonic()
                self._set(replica, "Ready")
            return
        if replica.phase == "Ready":
            replica.probe_failures += 1
            if replica.probe_failures >= self.liveness_failures:
                replica.ready_since = None
                self._set(
                    replica,
                    "Starting",
                    "Unready",
                    f"readiness probe failed {replica.probe_failures} times: {why}",
                )

    def _dispatch_changes(self) -> None:
        """Call the ``on_change`` callbacks (monitor thread, lock NOT held)."""
        with self._lock:
            changed, self._changed = self._changed, set()
            callbacks = list(self._callbacks)
        for owner_uid in sorted(changed):
            for callback in callbacks:
                try:
                    callback(owner_uid)
                except Exception:
                    log.exception("on_change callback failed for %s", owner_uid)
