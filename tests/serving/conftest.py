"""Fixtures for the model server tests: real model files and a process spawner that never leaks.

Test modules receive everything through fixtures (``spawn.free_port()``, ``iris_server``) rather than
importing this file: the suite runs with ``--import-mode=importlib``, where ``conftest`` is not importable.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

READY_DEADLINE_S = 60.0

PYTHON_MODEL_SOURCE = """
import numpy as np


class Doubler:
    def load(self):
        self.factor = 2.0

    def predict(self, x):
        if x.ndim != 2:
            raise ValueError(f"expected a 2-d batch, got {x.ndim} dims")
        return x * self.factor


class TwoHeads:
    def __init__(self):
        self.offset = 1

    def predict(self, x):
        return {"sum": x.sum(axis=1), "shifted": (x + self.offset).astype(np.int32)}


class Broken:
    def load(self):
        raise RuntimeError("weights are missing")

    def predict(self, x):
        return x
"""


@dataclass
class IrisModel:
    path: Path
    model: LogisticRegression
    X: np.ndarray


def free_port() -> int:
    """A port that was free a moment ago (tiny race; fine for tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Spawned:
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    base_url: str | None = None

    @property
    def url(self) -> str:
        assert self.base_url is not None, "spawned without a base_url"
        return self.base_url

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, deadline_s: float = READY_DEADLINE_S) -> None:
        assert self.base_url is not None
        deadline = time.monotonic() + deadline_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"server exited with {self.proc.returncode}:\n{self.stderr()}")
                try:
                    if client.get(f"{self.base_url}/v2/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        pytest.fail(f"server not ready within {deadline_s}s:\n{self.stderr()}")


class Spawner:
    free_port = staticmethod(free_port)

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.spawned: list[Spawned] = []

    def __call__(
        self,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
        base_url: str | None = None,
    ) -> Spawned:
        stderr_path = self.tmp_path / f"server-{len(self.spawned)}.stderr"
        full_env = {**os.environ, **(env or {})}
        with stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pilothouse.serving.modelserver", *args],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=full_env,
                pass_fds=pass_fds,
            )
        spawned = Spawned(proc, stderr_path, base_url)
        self.spawned.append(spawned)
        return spawned

    def close(self) -> None:
        for s in self.spawned:
            if s.proc.poll() is None:
                s.proc.terminate()
                try:
                    s.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    s.proc.kill()
                    s.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisModel:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    path = tmp_path_factory.mktemp("iris") / "iris.joblib"
    joblib.dump(model, path)
    return IrisModel(path, model, X)


@pytest.fixture(scope="session")
def iris_onnx(iris: IrisModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skl2onnx import to_onnx

    onx = to_onnx(iris.model, iris.X[:1].astype(np.float32))  # default: ZipMap probabilities output
    path = tmp_path_factory.mktemp("onnx") / "iris.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.fixture(scope="session")
def python_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("py") / "user_model.py"
    path.write_text(PYTHON_MODEL_SOURCE)
    return path


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawner]:
    spawner = Spawner(tmp_path)
    try:
        yield spawner
    finally:
        spawner.close()


@pytest.fixture(scope="module")
def iris_server(iris: IrisModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spawned]:
    """One real sklearn model server on --port, shared by a test module."""
    spawner = Spawner(tmp_path_factory.mktemp("server"))
    port = free_port()
    try:
        server = spawner(
            ["--name", "iris", "--model-uri", iris.path.as_uri(), "--format", "sklearn", "--port", str(port)],
            base_url=f"http://127.0.0.1:{port}",
        )
        server.wait_ready()
        yield server
    finally:
        spawner.close()
