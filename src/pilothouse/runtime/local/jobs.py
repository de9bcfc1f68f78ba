"""Training and batch jobs as gangs of local worker processes (the ``JobRuntime`` half of ``LocalRuntime``).

A job attempt is ``workers`` processes that start together or not at all and end together: the first
worker to fail takes the rest of the gang down (a distributed training run cannot go on without one of
its ranks), as does the active deadline or ``stop``. Nothing is retried here; the controller decides
whether a failed attempt gets another one and starts it as a new attempt.

Devices come from the same allocator as the model-server replicas' (one pool per machine), all workers'
at once before anything starts, so a gang never half-starts and then waits holding GPUs. They go back
only once every worker's process tree is gone and, with NVML, the GPUs show no process of the gang
(``handover``). A terminal phase is therefore a promise: the processes are gone and the devices are
free for the next attempt or job.

Workers get the ``torch.distributed`` environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``), so ``torch.distributed.init_process_group("nccl")`` works unchanged.
CPU and memory requests are *not* enforced locally (no cgroups here): they are for the scheduler's
bookkeeping only.

Stopping takes a grace period, so it happens on a thread of its own (``stop`` returns at once); the
monitor loop only looks at processes and decides. All state sits behind the runtime's lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from pilothouse.runtime.local.gpus import DeviceAllocator, cuda_visible_devices
from pilothouse.runtime.local.handover import DeviceHandover
from pilothouse.runtime.local.jobstate import Ending, Job, JobRecord, JobRecordStore, Worker, WorkerRecord
from pilothouse.runtime.local.launch import prepend_platform_python
from pilothouse.runtime.local.process import (
    describe_exit,
    disown,
    find_by_env_values,
    free_port,
    is_alive,
    kill_all,
    kill_group_leftovers,
    kill_tree,
    same_process,
    spawn,
)
from pilothouse.runtime.protocol import InsufficientResources, JobRun, JobRunState

log = logging.getLogger(__name__)

WORKER_ENV = "PILOTHOUSE_JOB_WORKER"
"""Set to a value unique to one worker of one attempt: every process of that worker inherits it."""
MASTER_ADDR = "127.0.0.1"


class JobStillRunning(RuntimeError):
    """A new attempt (or ``forget``) while the previous attempt's processes or devices are not yet gone."""


def worker_env(
    base: Mapping[str, str],
    run: JobRun,
    index: int,
    devices: Mapping[str, list[str]],
    master_port: int,
    marker: str,
) -> dict[str, str]:
    """A worker's environment: ``base`` + the job's env + what the platform sets (which wins)."""
    env = dict(base)
    prepend_platform_python(env, sys.executable)
    env.setdefault("PYTHONUNBUFFERED", "1")  # the log file shows output as it happens
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA's numbering = NVML's = ours
    env.update(run.env)
    env.update(
        {
            "CUDA_VISIBLE_DEVICES": cuda_visible_devices(devices),
            "PILOTHOUSE_JOB_NAME": run.owner.name,
            "PILOTHOUSE_JOB_ATTEMPT": str(run.attempt),
            "RANK": str(index),
            "WORLD_SIZE": str(run.workers),
            "LOCAL_RANK": str(index),
            "LOCAL_WORLD_SIZE": str(run.workers),
            "MASTER_ADDR": MASTER_ADDR,
            "MASTER_PORT": str(master_port),
            WORKER_ENV: marker,
        }
    )
    return env


def _valid_uid(owner_uid: str) -> bool:
    """Usable as a file name (records and log directories are named by it)."""
    return bool(owner_uid) and "/" not in owner_uid and not owner_uid.startswith(".")


def _check_uid(owner_uid: str) -> None:
    if not _valid_uid(owner_uid):
        raise ValueError(f"invalid job owner uid {owner_uid!r}")


class LocalJobs:
    """Job gangs on this machine. ``LocalRuntime`` owns one and delegates the ``JobRuntime`` methods."""

    def __init__(
        self,
        runtime_dir: Path,
        lock: threading.RLock,
        allocator: DeviceAllocator,
        handover: DeviceHandover,
        *,
        grace_period: float,
        changed: Callable[[str], None],
        wake: Callable[[], None],
    ) -> None:
        self.runtime_dir = runtime_dir
        self.logs_dir = runtime_dir / "logs" / "jobs"
        self.grace_period = grace_period
        self._store = JobRecordStore(runtime_dir / "jobs")
        self._lock = lock
        self._allocator = allocator
        self._handover = handover
        self._changed = changed
        self._wake = wake
        self._jobs: dict[str, Job] = {}
        self._closed = False

    # -- the JobRuntime methods -----------------------------------------------------------------------

    def start(self, run: JobRun) -> None:
        uid = run.owner.uid
        _check_uid(uid)
        if run.workers < 1 or not run.command:
            raise ValueError("a job attempt needs at least one worker and a command")
        with self._lock:
            if self._closed:
                raise RuntimeError("the local runtime is closed")
            current = self._jobs.get(uid)
            if current is not None:
                if current.attempt == run.attempt:
                    return
                if current.attempt > run.attempt:
                    raise ValueError(
                        f"job {uid}: attempt {run.attempt} is older than attempt {current.attempt}"
                    )
                if not current.finished:
                    raise JobStillRunning(
                        f"job {uid}: attempt {current.attempt} is still {current.record.phase}; "
                        "stop it and wait for it to finish before starting attempt "
                        f"{run.attempt}"
                    )
            job = self._allocate(run)  # raises before anything changes: a finished attempt stays visible
            self._jobs[uid] = job
            self._store.save(job.record)
            self._launch(job, run)
            self._changed(uid)
        self._wake()

    def stop(self, owner_uid: str, grace_seconds: float) -> None:
        with self._lock:
            job = self._jobs.get(owner_uid)
            if job is None or job.finished or job.ending is not None:
                return
            message = f"stopped: SIGTERM, then SIGKILL after {grace_seconds:g}s"
            self._end(job, Ending("Stopped", "Stopped", message), grace_seconds)
        self._wake()

    def observe(self, owner_uid: str) -> JobRunState | None:
        with self._lock:
            job = self._jobs.get(owner_uid)
            return job.state() if job is not None else None

    def forget(self, owner_uid: str) -> None:
        _check_uid(owner_uid)
        with self._lock:
            job = self._jobs.get(owner_uid)
            if job is not None and not job.finished:
                raise JobStillRunning(f"job {owner_uid}: attempt {job.attempt} is still {job.record.phase}")
            self._jobs.pop(owner_uid, None)
            self._store.delete(owner_uid)

    def owners(self) -> set[str]:
        with self._lock:
            return set(self._jobs)

    def log_files(self, owner_uid: str, worker: int | None = None) -> list[tuple[str, Path]]:
        """("worker-<i>", log path) in worker order; for a forgotten job, the files still on disk."""
        with self._lock:
            job = self._jobs.get(owner_uid)
            pairs = [(w.record.index, Path(w.record.log_path)) for w in job.workers] if job else []
        if not pairs and _valid_uid(owner_uid):
            for path in (self.logs_dir / owner_uid).glob("worker-*.log"):
                index = path.stem.removeprefix("worker-")
                if index.isdigit():
                    pairs.append((int(index), path))
            pairs.sort()
        return [(f"worker-{i}", path) for i, path in pairs if worker is None or i == worker]

    # -- lifecycle (called by LocalRuntime) ---------------------------------------------------------------

    def adopt(self) -> None:
        """Take over the job attempts an earlier runtime on this directory left behind."""
        with self._lock:
            for record in self._store.load_all():
                job = Job(record, [Worker(w) for w in record.workers])
                self._jobs[job.uid] = job
                self._changed(job.uid)
                if job.finished:
                    continue
                lost: list[Worker] = []
                for worker in job.workers:
                    self._allocator.reserve(worker.record.holder, worker.record.devices)
                    if worker.record.exited:
                        continue
                    proc = (
                        same_process(worker.record.pid, worker.record.create_time or 0.0)
                        if worker.record.pid
                        else None
                    )
                    if proc is None:
                        worker.record.exited = True
                        lost.append(worker)
                    else:
                        worker.adopted = proc
                adopted = [w.record.pid for w in job.workers if w.adopted is not None]
                log.info("adopted job %s attempt %d (pids %s)", job.uid, job.attempt, adopted)
                if job.ending is not None:  # it was being stopped: finish that
                    self._end(job, job.ending, self.grace_period)
                elif lost:
                    names = ", ".join(f"worker {w.record.index}" for w in lost)
                    message = f"{names} exited while no control plane was watching (exit code unknown)"
                    self._end(job, Ending("Failed", "Lost", message), self.grace_period)

    def tick(self) -> None:
        """One look at every running gang (monitor thread)."""
        with self._lock:
            if self._closed:
                return
            now = time.time()
            for job in list(self._jobs.values()):
                if job.finished or job.ending is not None:
                    self._maybe_finish(job)
                    continue
                ending = self._check_workers(job, now)
                if ending is not None:
                    self._end(job, ending, self.grace_period)

    def stop_all(self) -> None:
        """Start stopping every gang (returns at once)."""
        with self._lock:
            for job in self._jobs.values():
                if not job.finished and job.ending is None:
                    message = "stopped: the control plane shut down"
                    self._end(job, Ending("Stopped", "Stopped", message), self.grace_period)

    def close(self, stop_workloads: bool) -> None:
        """Stop every gang (``stop_workloads``) or leave them running for the next runtime to adopt."""
        if stop_workloads:
            self.stop_all()
        with self._lock:
            finishers = [j.finisher for j in self._jobs.values() if j.finisher is not None]
        for finisher in finishers:
            finisher.join(self.grace_period + 15.0)
        with self._lock:
            self._closed = True
            for job in self._jobs.values():
                for worker in job.workers:
                    if worker.child is not None:
                        disown(worker.child)
                        worker.child = None
                self._store.save(job.record)
            if not stop_workloads:
                self._jobs.clear()

    # -- internals (``_lock`` held unless said otherwise) -------------------------------------------------

    def _allocate(self, run: JobRun) -> Job:
        """The attempt's ``Job`` with every worker's devices allocated, or ``InsufficientResources``."""
        uid, attempt = run.owner.uid, run.attempt
        per_worker = {r: c for r, c in run.resources.accelerators.items() if c > 0}
        shortage = self._allocator.shortage({r: c * run.workers for r, c in per_worker.items()})
        if shortage is not None:
            asked = ", ".join(f"{c} {r}" for r, c in sorted(per_worker.items()))
            handing_over = sum(len(keys) for keys in self._handover.pending_devices().values())
            note = f" ({handing_over} still being handed over)" if handing_over else ""
            raise InsufficientResources(
                f"cannot start job {run.owner.name!r} attempt {attempt}: "
                f"{run.workers} worker(s) x {asked}: {shortage}{note}"
            )
        workers: list[Worker] = []
        for index in range(run.workers):
            holder = f"job/{uid}/{attempt}/{index}"
            devices = self._allocator.allocate(holder, per_worker)
            if devices is None:  # pragma: no cover - the shortage check above makes this impossible
                for w in workers:
                    self._allocator.release(w.record.holder)
                raise InsufficientResources(f"cannot start job {run.owner.name!r}: devices vanished")
            marker = str(self.runtime_dir / "jobs" / uid / f"attempt-{attempt}" / f"worker-{index}")
            log_path = str(self.logs_dir / uid / f"worker-{index}.log")
            workers.append(Worker(WorkerRecord(index, holder, marker, log_path, devices=devices)))
        record = JobRecord(
            owner=run.owner,
            attempt=attempt,
            command=list(run.command),
            env=dict(run.env),
            working_dir=run.working_dir,
            active_deadline_seconds=run.active_deadline_seconds,
            master_port=free_port(MASTER_ADDR),
            workers=[w.record for w in workers],
            created_at=time.time(),
        )
        return Job(record, workers)

    def _launch(self, job: Job, run: JobRun) -> None:
        """Start every worker; if one cannot be started, end the gang (``StartFailed``)."""
        record = job.record
        record.started_at = time.time()
        cwd = Path(run.working_dir) if run.working_dir else None
        for worker in job.workers:
            w = worker.record
            log_path = Path(w.log_path)
            env = worker_env(os.environ, run, w.index, w.devices, record.master_port, w.marker)
            try:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                with open(log_path, "a", encoding="utf-8") as out:
                    out.write(f"--- attempt {record.attempt} ---\n")
                if cwd is not None and not cwd.is_dir():
                    raise NotADirectoryError(f"working directory {str(cwd)!r} does not exist")
                spawned = spawn(run.command, env, log_path, cwd=cwd)
            except OSError as exc:
                message = f"worker {w.index}: cannot run {run.command[0]!r}: {exc}"
                with contextlib.suppress(OSError), open(log_path, "a", encoding="utf-8") as out:
                    out.write(f"pilothouse: {message}\n")
                for rest in job.workers[w.index :]:
                    rest.record.exited = True
                self._end(job, Ending("Failed", "StartFailed", message), 0.0)
                return
            worker.child = spawned.proc
            _wake_on_exit(spawned.proc, self._wake)
            w.pid = spawned.proc.pid
            w.create_time = spawned.create_time
            self._handover.record_start(w.holder, time.time(), time.monotonic())
        record.phase = "Running"
        self._store.save(record)

    def _check_workers(self, job: Job, now: float) -> Ending | None:
        """Notice exited workers; how the gang should end, if it should."""
        failure: Ending | None = None
        exited: list[Worker] = []
        for worker in job.workers:
            w = worker.record
            if w.exited or not worker.running:
                continue
            if worker.child is not None:
                code = worker.child.poll()
                if code is None:
                    continue
            else:
                assert worker.adopted is not None
                if is_alive(worker.adopted):
                    continue
                code = None
            w.exited, w.exit_code = True, code
            worker.child = worker.adopted = None
            exited.append(worker)
            if failure is not None or code == 0:
                continue
            if code is None:
                message = f"worker {w.index} (pid {w.pid}) exited; its exit code is unknown (adopted process)"
                failure = Ending("Failed", "Lost", message)
            else:
                failure = Ending("Failed", "Error", f"worker {w.index} {describe_exit(code)}", code)
        if exited:  # what a worker leaves behind dies with it (as in a container)
            for worker in exited:
                kill_group_leftovers(worker.record.pid, worker.record.create_time)
            for strays in find_by_env_values(WORKER_ENV, [w.record.marker for w in exited]).values():
                kill_all(strays)
            self._store.save(job.record)
        if failure is not None:
            return failure
        if all(w.record.exited for w in job.workers):
            return Ending("Succeeded", "Completed", f"all {len(job.workers)} workers exited with code 0", 0)
        deadline = job.record.active_deadline_seconds
        if (
            deadline is not None
            and job.record.started_at is not None
            and now >= job.record.started_at + deadline
        ):
            return Ending(
                "Failed",
                "DeadlineExceeded",
                f"the attempt ran longer than its active deadline of {deadline}s",
            )
        return None

    def _end(self, job: Job, ending: Ending, grace: float) -> None:
        """Decide how the gang ends and start stopping it on a thread of its own."""
        record = job.record
        record.ending = ending
        if ending.phase != "Succeeded":
            record.phase, record.reason, record.message = "Terminating", ending.reason, ending.message
        self._store.save(record)
        self._changed(job.uid)
        finisher = threading.Thread(
            target=self._finish, args=(job, grace), name=f"pilothouse-job-{job.uid}", daemon=True
        )
        job.finisher = finisher
        finisher.start()

    def _finish(self, job: Job, grace: float) -> None:
        """Finisher thread, lock NOT held: nothing else touches the workers' processes once ``ending``
        is set. Kills every worker's tree, then hands the devices over."""
        codes: dict[int, int | None] = {}
        try:
            strays = find_by_env_values(WORKER_ENV, [w.record.marker for w in job.workers])

            def kill(worker: Worker) -> None:
                w = worker.record
                if w.pid is None or (w.exited and not strays[w.marker]):
                    return
                codes[w.index] = kill_tree(w.pid, w.create_time, grace, worker.child, strays[w.marker])

            if len(job.workers) == 1:
                kill(job.workers[0])
            else:
                with ThreadPoolExecutor(max_workers=min(len(job.workers), 16)) as pool:
                    list(pool.map(kill, job.workers))
            leftovers = find_by_env_values(WORKER_ENV, [w.record.marker for w in job.workers])
            for marker, procs in leftovers.items():
                # Forked after the sweep above, or workers of a launch a crash cut short (no pid on
                # record): once more, without grace.
                if procs:  # pragma: no cover
                    kill_all(procs)
                    psutil.wait_procs(procs, timeout=5.0)
                    log.warning(
                        "job %s: killed late processes %s of %s", job.uid, [p.pid for p in procs], marker
                    )
        except Exception:  # pragma: no cover - a bug; the job must still end rather than hang
            log.exception("stopping the workers of job %s failed", job.uid)
        finally:
            with self._lock:
                for worker in job.workers:
                    w = worker.record
                    if not w.exited:
                        w.exited, w.exit_code = True, codes.get(w.index)
                    worker.child = worker.adopted = None
                    pids = [w.pid] if w.pid is not None else []
                    self._handover.release(w.holder, pids, (WORKER_ENV, w.marker))
                job.trees_gone = True
                job.finisher = None
                self._maybe_finish(job)
                self._store.save(job.record)
                self._changed(job.uid)
            self._wake()

    def _maybe_finish(self, job: Job) -> None:
        """Report the terminal phase once the trees are gone and every device is back in the pool."""
        ending = job.ending
        if job.finished or ending is None or not job.trees_gone:
            return
        if any(self._handover.is_pending(h) for h in job.holders):
            return
        record = job.record
        record.phase, record.reason, record.message = ending.phase, ending.reason, ending.message
        record.exit_code = ending.exit_code
        record.finished_at = time.time()
        self._store.save(record)
        self._changed(job.uid)


def _wake_on_exit(proc: subprocess.Popen[bytes], wake: Callable[[], None]) -> None:
    """A worker's exit wakes the monitor at once rather than at its next tick (up to the probe interval,
    0.2 s, later), so its devices go to the next job that much sooner. ``poll`` from the monitor stays
    safe meanwhile: ``Popen`` serialises waiting on the child."""

    def wait() -> None:
        proc.wait()
        wake()

    threading.Thread(target=wait, name=f"pilothouse-worker-exit-{proc.pid}", daemon=True).start()
