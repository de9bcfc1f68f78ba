"""Spawning replica processes and killing whole process trees.

A model server may fork workers or a user's command may start helpers; stopping only the top process
would leave orphans holding ports and GPU memory. So every replica leads its own session/process group,
and stopping it signals the group *and* every descendant collected beforehand (a descendant may have left
the group with ``setsid``), escalating from SIGTERM to SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

_CREATE_TIME_TOLERANCE = 0.05
_disowned: list[subprocess.Popen[bytes]] = []
"""Children left running by ``close(stop_workloads=False)``: kept referenced so that ``Popen`` never warns
about them, and polled now and then so that they are reaped if they exit while we still live."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind port 0, read it, close: a small race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A bound, listening TCP socket on an ephemeral port, to be inherited by a model server (no race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class Spawned:
    proc: subprocess.Popen[bytes]
    create_time: float


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    pass_fds: Sequence[int] = (),
    cwd: Path | None = None,
) -> Spawned:
    """Start ``argv`` as the leader of a new session, output appended to ``log_path``."""
    reap_disowned()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            pass_fds=tuple(pass_fds),
            start_new_session=True,
            cwd=cwd,
        )
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        create_time = 0.0  # already gone; the monitor will see it exit
    return Spawned(proc, create_time)


def same_process(pid: int, create_time: float) -> psutil.Process | None:
    """The live, non-zombie process ``pid`` if it is the one started at ``create_time`` (pids get reused)."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > _CREATE_TIME_TOLERANCE:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return proc


def is_alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def find_by_env(key: str, value: str) -> list[psutil.Process]:
    """Live processes whose environment has ``key=value``: a replica's descendants inherit its environment,
    so this finds even those that left its process group and lost their parent (double fork + setsid)."""
    found: list[psutil.Process] = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(key) == value and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def find_by_env_values(key: str, values: Collection[str]) -> dict[str, list[psutil.Process]]:
    """``find_by_env`` for several values in one pass over the process table (a job's workers)."""
    found: dict[str, list[psutil.Process]] = {value: [] for value in values}
    if not found:
        return found
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            value = proc.environ().get(key)
            if value is not None and value in found and proc.status() != psutil.STATUS_ZOMBIE:
                found[value].append(proc)
        except psutil.Error:
            continue
    return found


def kill_group_leftovers(pid: int | None, create_time: float | None) -> None:
    """SIGKILL the rest of the process group of a leader that exited (unless its pid was reused since).
    Does not wait. Descendants that left the group are found by environment (``find_by_env``)."""
    if not pid:
        return
    group_is_ours = True
    try:
        proc = psutil.Process(pid)
        # The pid is in use: the group is ours only if that is our (zombie) leader.
        group_is_ours = abs(proc.create_time() - (create_time or 0.0)) < _CREATE_TIME_TOLERANCE
    except psutil.NoSuchProcess:
        pass  # a group with this id can only be what is left of ours
    except psutil.Error:
        group_is_ours = False
    if group_is_ours:
        kill_group(pid)


def kill_all(procs: Iterable[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def kill_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal a process group, ignoring one that is already gone."""
    if pgid <= 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if is_alive(p)]


def _outside_group(procs: list[psutil.Process], pgid: int | None) -> list[psutil.Process]:
    """The processes not in process group ``pgid`` (all of them when None): those ``killpg`` missed."""
    if pgid is None:
        return procs
    outside = []
    for proc in procs:
        try:
            if os.getpgid(proc.pid) != pgid:
                outside.append(proc)
        except OSError:
            continue  # gone already
    return outside


def kill_tree(
    pid: int,
    create_time: float | None,
    grace: float,
    child: subprocess.Popen[bytes] | None = None,
    strays: Sequence[psutil.Process] = (),
) -> int | None:
    """Stop a replica's whole process tree: SIGTERM the group and descendants, SIGKILL after ``grace``.

    ``pid`` leads its own process group (``start_new_session``). Descendants are collected first because
    once the leader dies they are re-parented and can no longer be found from it. Returns the leader's
    exit code when it is our child, else None. Our child is reaped here; other processes are not ours to
    reap (their parent or init does it) but are waited for until they are gone or zombies. ``strays`` are
    more processes of the replica found some other way (``find_by_env``).
    """
    root: psutil.Process | None = None
    if child is not None:
        if child.poll() is None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
    elif create_time is not None:
        root = same_process(pid, create_time)
    tree: list[psutil.Process] = []
    if root is not None:
        tree.append(root)
        with contextlib.suppress(psutil.Error):
            tree.extend(root.children(recursive=True))
    known = {p.pid for p in tree}
    tree.extend(p for p in strays if p.pid not in known)
    group_is_ours = root is not None or (child is not None)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if group_is_ours:
            kill_group(pid, sig)
        # Each process is signalled once: a second SIGTERM would interrupt a worker's own SIGTERM
        # handler (checkpointing, say) or arrive after the interpreter restored the default action.
        for proc in _outside_group(_alive(tree), pid if group_is_ours else None):
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            child_done = child is None or child.poll() is not None
            if child_done and not _alive(tree):
                break
            time.sleep(0.02)
        else:
            continue
        break
    if group_is_ours:
        kill_group(pid, signal.SIGKILL)  # anything that joined the group after we looked
    if child is not None:
        try:
            return child.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            log.error("process %d survived SIGKILL", pid)
            disown(child)
    leftover = _alive(tree)
    if leftover:  # pragma: no cover - uninterruptible sleep (D state) at worst
        log.error("processes %s survived SIGKILL", [p.pid for p in leftover])
    return None


def disown(child: subprocess.Popen[bytes]) -> None:
    """Stop tracking a child that keeps running (its records let a later runtime adopt it)."""
    if child.poll() is None:
        _disowned.append(child)


def reap_disowned() -> None:
    for child in list(_disowned):
        if child.poll() is not None:
            _disowned.remove(child)
