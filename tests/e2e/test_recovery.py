"""Crashes: a SIGKILLed replica comes back; a SIGKILLed control plane finds its replicas again."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from support import ControlPlane, wait_for


def apply_iris(plane: ControlPlane, model: Path, tmp_path: Path, replicas: int = 1) -> str:
    doc = {
        "apiVersion": "pilothouse.dev/v1alpha1",
        "kind": "ModelEndpoint",
        "metadata": {"name": "iris"},
        "spec": {
            "model": {"uri": str(model)},
            "autoscaling": {"minReplicas": replicas, "maxReplicas": replicas},
        },
    }
    path = tmp_path / "iris.yaml"
    path.write_text(yaml.safe_dump(doc))
    plane.cli("apply", "-f", str(path), "--wait")
    url: str = json.loads(plane.cli("get", "me", "iris", "-o", "json").stdout)["status"]["url"]
    return url


def replicas(plane: ControlPlane) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{plane.url}/apis/pilothouse.dev/v1alpha1/namespaces/default/modelendpoints/iris/replicas"
    )
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def ready(plane: ControlPlane) -> bool:
    doc = json.loads(plane.cli("get", "me", "iris", "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in doc["status"]["conditions"]}
    return conditions.get("Ready") == "True"


def model_servers() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if "pilothouse.serving.modelserver" in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_sigkilled_replica_comes_back_ready(
    control_plane: ControlPlane, iris_model: Path, tmp_path: Path
) -> None:
    url = apply_iris(control_plane, iris_model, tmp_path)
    (before,) = replicas(control_plane)
    os.kill(before["pid"], signal.SIGKILL)
    after = wait_for(
        lambda: next(
            (r for r in replicas(control_plane) if r["pid"] != before["pid"] and r["phase"] == "Ready"), None
        ),
        timeout=60,
        what="replica restarted and Ready",
    )
    assert after["restarts"] == 1
    assert after["id"] == before["id"]
    wait_for(lambda: ready(control_plane), what="endpoint Ready again")
    body = {
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
    }
    assert httpx.post(f"{url}/v2/models/iris/infer", json=body, timeout=10).status_code == 200


def test_sigkilled_control_plane_restores_endpoints_without_duplicates(
    control_plane_factory: Callable[..., ControlPlane], iris_model: Path, tmp_path: Path
) -> None:
    first = control_plane_factory()
    apply_iris(first, iris_model, tmp_path, replicas=2)
    pids_before = sorted(r["pid"] for r in replicas(first))
    assert len(pids_before) == 2

    first.stop(signal.SIGKILL)
    assert all(psutil.pid_exists(pid) for pid in pids_before), "replicas outlive a SIGKILLed control plane"

    second = control_plane_factory(data_dir=first.data_dir, start=False)
    second.port, second.gateway_port = first.port, first.gateway_port
    second.start()
    wait_for(lambda: ready(second), what="endpoint Ready after restart")
    pids_after = sorted(r["pid"] for r in replicas(second))
    assert pids_after == pids_before, "the restarted control plane adopts its replicas"
    mine = [
        p
        for p in model_servers()
        if str(first.data_dir) in (p.environ().get("PILOTHOUSE_TERMINATION_LOG") or "")
    ]
    assert sorted(p.pid for p in mine) == pids_before, "no duplicate model servers"

    assert second.stop() == 0
    wait_for(
        lambda: not any(psutil.pid_exists(pid) for pid in pids_before), what="replicas stopped with Ctrl-C"
    )
