"""Pieces the foundation benchmarks share: the machine description, the iris model and manifest, and a
real ``pilothouse up`` started on ephemeral ports in a temp data dir and always stopped again.

Kept here (not in each benchmark) so apply-to-Ready and the gateway benchmark measure the same
platform the same way; free ports and the model server load generator come from
``benchmarks/modelserver/bench.py`` instead of being copied.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from modelserver.bench import free_port
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import KINDS, KindInfo, Resource, parse_manifest
from pilothouse.client import PilothouseClient

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "examples" / "iris"
ENDPOINT_INFO: KindInfo = KINDS["ModelEndpoint"]
INFER_BODY: dict[str, Any] = {
    "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
}


def pick_generator(choice: str = "auto") -> str:
    """``hey`` when on PATH (Go, light on CPU), else the built-in Python generator of bench.py."""
    if choice == "auto":
        return "hey" if shutil.which("hey") else "python"
    return choice


def machine_info(generator: str) -> dict[str, Any]:
    cpu = "unknown"
    mem_gib = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_gib, 1),
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "generator": generator,
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
    }


def train_iris(directory: Path) -> Path:
    """Train with examples/iris/train.py (as ``make demo`` does) into ``directory``."""
    model = directory / "model.joblib"
    subprocess.run(
        [sys.executable, str(IRIS / "train.py"), str(model)], check=True, stdout=subprocess.DEVNULL
    )
    return model


def iris_endpoint(model: Path, name: str = "iris") -> Resource:
    """examples/iris/endpoint.yaml with the model path pointed at ``model``."""
    doc = yaml.safe_load((IRIS / "endpoint.yaml").read_text())
    doc["metadata"]["name"] = name
    doc["spec"]["model"]["uri"] = str(model)
    return parse_manifest(doc, "examples/iris/endpoint.yaml")


@dataclass(frozen=True)
class Platform:
    api_url: str
    gateway_url: str
    log: Path


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pilothouse up exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the control plane did not become ready in time")


@contextmanager
def pilothouse_up(data_dir: Path, extra_args: Sequence[str] = ()) -> Iterator[Platform]:
    """Run ``pilothouse up`` in the background; on exit SIGINT it (it stops its replicas) and wait."""
    port, gateway_port = free_port(), free_port()
    log_path = data_dir / "up.log"
    cmd = [sys.executable, "-m", "pilothouse.cli", "up", "--port", str(port)]
    cmd += ["--gateway-port", str(gateway_port), "--data-dir", str(data_dir), *extra_args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        api = f"http://127.0.0.1:{port}"
        _wait_healthy(api, proc)
        yield Platform(api, f"http://127.0.0.1:{gateway_port}", log_path)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def endpoint_url(obj: Resource) -> str:
    """``status.url`` of a ModelEndpoint that is Ready."""
    assert isinstance(obj, ModelEndpoint) and obj.status.url, f"no status.url on {obj.metadata.name}"
    return obj.status.url


def client_for(plat: Platform) -> PilothouseClient:
    return PilothouseClient(plat.api_url, timeout=30.0)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
