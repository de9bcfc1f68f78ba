"""The peer model servers for ``bench.py``: their venvs, the KServe Model class, MLServer's settings.

KServe 0.21 and MLServer 1.7.1 cannot share one venv (fastapi pins conflict; pip silently backtracks to
an MLServer 1.2 that does not import under pydantic 2), so each gets its own under ``/.bench/``,
created once and reused. MLServer needs ``uvloop<0.22`` for its default worker pool. KServe's
``sklearnserver`` runtime is not on PyPI, so KServe serves the joblib model with the small custom
``kserve.Model`` below (written to a file and run with the KServe venv's interpreter).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / ".bench"

VENVS: dict[str, list[str]] = {
    "kserve": ["kserve==0.21.0", "scikit-learn", "joblib"],
    "mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"],
}

KSERVE_MODEL = '''\
"""KServe custom Model serving a scikit-learn joblib file (v1 and v2/OIP)."""

import argparse

import joblib
import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server


class SKLearnIris(Model):
    def __init__(self, name: str, path: str):
        super().__init__(name)
        self.path = path
        self.model = None
        self.ready = False

    def load(self) -> bool:
        self.model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):
            x = np.asarray(payload.inputs[0].data, dtype=np.float64).reshape(payload.inputs[0].shape)
            y = self.model.predict(x)
            out = InferOutput(name="output-0", shape=list(y.shape), datatype="INT64", data=y.tolist())
            return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id)
        return {"predictions": self.model.predict(payload["instances"]).tolist()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True)
    args, _ = parser.parse_known_args()
    model = SKLearnIris(args.model_name, args.model_path)
    model.load()
    ModelServer().start([model])
'''


@dataclass
class Peer:
    """How to start one peer: command, working directory, and the URL path that says it is ready."""

    command: list[str]
    cwd: Path
    ready_path: str = "/v2/models/iris/ready"


def venv_python(name: str) -> Path:
    return BENCH_DIR / name / "bin" / "python"


def ensure_venv(name: str, timeout_s: float = 600.0) -> Path:
    """Create ``/.bench/<name>`` with ``VENVS[name]`` once; reuse it when its marker matches the specs."""
    venv = BENCH_DIR / name
    marker = venv / ".pilothouse-bench"
    specs = "\n".join(VENVS[name])
    if marker.exists() and marker.read_text() == specs and venv_python(name).exists():
        return venv_python(name)
    print(f"creating {venv} ({', '.join(VENVS[name])}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv_python(name)), "-m", "pip", "install", "-q", *VENVS[name]], check=True, timeout=timeout_s
    )
    marker.write_text(specs)
    return venv_python(name)


def kserve(work: Path, model: Path, http_port: int, grpc_port: int) -> Peer:
    script = work / "kserve_iris.py"
    script.write_text(KSERVE_MODEL)
    cmd = [str(venv_python("kserve")), str(script), "--model_name", "iris", "--model_path", str(model)]
    cmd += ["--http_port", str(http_port), "--grpc_port", str(grpc_port), "--workers", "1"]
    return Peer(cmd, work)


def mlserver(work: Path, model: Path, ports: tuple[int, int, int], parallel_workers: int | None) -> Peer:
    """MLServer from a model repository in ``work``; ``parallel_workers=None`` keeps MLServer's default."""
    repo = work / f"mlserver-{'default' if parallel_workers is None else parallel_workers}"
    (repo / "models" / "iris").mkdir(parents=True, exist_ok=True)
    http, grpc, metrics = ports
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": grpc,
        "metrics_port": metrics,
    }
    if parallel_workers is not None:
        settings["parallel_workers"] = parallel_workers
    (repo / "settings.json").write_bytes(orjson.dumps(settings))
    model_settings = {
        "name": "iris",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model), "version": "v1"},
    }
    (repo / "models" / "iris" / "model-settings.json").write_bytes(orjson.dumps(model_settings))
    mlserver_bin = venv_python("mlserver").parent / "mlserver"
    return Peer([str(mlserver_bin), "start", str(repo)], repo)
