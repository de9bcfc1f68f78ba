"""Start-up guards that must fail fast and clearly, before anything is started or written.

A second ``up`` on one data dir would run every replica twice, so the data dir is locked (``flock``: the
kernel releases it even when the holder is SIGKILLed). Ports are bound here, up front, so "port in use"
is reported before any replica starts, and the listening sockets are handed to the servers as-is.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path


class StartupError(Exception):
    """The control plane cannot start; the message says what to change."""


class DataDirLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StartupError(
                f"another control plane (pid {holder}) is already using the data dir {self.path.parent}; "
                "stop it first or pass a different --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def bind_listener(host: str, port: int, flag: str) -> socket.socket:
    """A listening TCP socket, or a ``StartupError`` naming the option to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use; choose another with {flag}"
            ) from None
        raise StartupError(f"cannot listen on {host}:{port} ({exc.strerror}); check {flag}") from None
    sock.set_inheritable(False)
    return sock
