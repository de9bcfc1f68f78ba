"""What a replica runs: the command line, environment and port of one start of one replica.

``uri`` models run the platform's model server on a listening socket the runtime binds and hands over
(``--fd``), so no other process can grab the port between choosing and binding it. ``command`` models get
``$PORT``/``$HOST`` like on any PaaS. Every replica gets ``CUDA_VISIBLE_DEVICES`` set to exactly its
allocated devices (the empty string for none), so a CPU replica can never grab a GPU by accident.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pilothouse.runtime.local.gpus import cuda_visible_devices
from pilothouse.runtime.local.process import free_port, listening_socket
from pilothouse.runtime.protocol import NotSupported, WorkloadSpec

HOST = "127.0.0.1"
MODEL_SERVER_MODULE = "pilothouse.serving.modelserver"
TERMINATION_LOG_ENV = "PILOTHOUSE_TERMINATION_LOG"
REPLICA_ID_ENV = "PILOTHOUSE_REPLICA_ID"


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    port: int
    url: str
    readiness_url: str
    sock: socket.socket | None = None
    """The listening socket a model server inherits; the parent closes its copy once the child runs."""

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self.sock.fileno(),) if self.sock is not None else ()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def readiness_url(url: str, path: str) -> str:
    return url + (path if path.startswith("/") else "/" + path)


def prepare(
    workload: WorkloadSpec,
    *,
    python: str,
    replica_id: str,
    devices: Mapping[str, list[str]],
    termination_log: Path,
    base_env: Mapping[str, str] | None = None,
) -> Launch:
    """Argv, env and port for one start of a replica (binds a socket for ``uri`` models: call ``close``)."""
    model = workload.model
    env = dict(os.environ if base_env is None else base_env)
    env.setdefault("PYTHONUNBUFFERED", "1")  # the log file shows output as it happens
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA's device numbering = NVML's = ours
    prepend_platform_python(env, python)
    env.update(workload.env)
    env[TERMINATION_LOG_ENV] = str(termination_log)
    env[REPLICA_ID_ENV] = replica_id
    env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices(devices)
    if model.kind == "uri":
        assert model.uri is not None
        assert model.format is not None
        sock = listening_socket(HOST)
        port = int(sock.getsockname()[1])
        argv = [python, "-m", MODEL_SERVER_MODULE, "--name", workload.model_name]
        argv += ["--model-uri", model.uri, "--format", model.format]
        if model.className:
            argv += ["--class-name", model.className]
        argv += ["--host", HOST, "--fd", str(sock.fileno())]
        url = f"http://{HOST}:{port}"
        return Launch(argv, env, port, url, readiness_url(url, model.readinessPath), sock)
    if model.kind == "command":
        assert model.command is not None
        port = free_port(HOST)
        env["PORT"] = str(port)
        env["HOST"] = HOST
        url = f"http://{HOST}:{port}"
        return Launch(list(model.command), env, port, url, readiness_url(url, model.readinessPath))
    raise NotSupported("container images need the Kubernetes runtime; run a uri or command model locally")


def prepend_platform_python(env: dict[str, str], python: str) -> None:
    """Put the platform's interpreter directory first on PATH.

    ``command: [python, train.py]`` then runs in the environment Pilothouse itself runs in (its
    virtualenv, with numpy, scikit-learn, ...), the way ``uv run`` does — not whatever ``python`` the
    shell that started ``pilothouse up`` happens to find first.
    """
    directory = str(Path(python).parent)
    current = env.get("PATH", "")
    if current.split(os.pathsep)[0] != directory:
        env["PATH"] = directory + (os.pathsep + current if current else "")
