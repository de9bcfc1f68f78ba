"""The issue's user flow, by the real CLI against a real control plane, model servers and gateway."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import joblib
import numpy as np
import psutil
import yaml

from support import ControlPlane, wait_for

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def write_manifest(path: Path, model: Path, **spec: object) -> Path:
    doc = {
        "apiVersion": "pilothouse.dev/v1alpha1",
        "kind": "ModelEndpoint",
        "metadata": {"name": "iris", "labels": {"app": "iris"}},
        "spec": {"model": {"uri": str(model), "format": "sklearn"}, **spec},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def infer(url: str, rows: list[list[float]]) -> list[int]:
    body = {"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}
    response = httpx.post(f"{url}/v2/models/iris/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text
    data: list[int] = response.json()["outputs"][0]["data"]
    return data


def model_server_pids(plane: ControlPlane) -> set[int]:
    return {p.pid for p in plane.descendants() if "pilothouse.serving.modelserver" in " ".join(p.cmdline())}


def test_apply_get_infer_describe_logs_update_delete(
    control_plane: ControlPlane, iris_model: Path, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "endpoint.yaml", iris_model)
    applied = control_plane.cli("apply", "-f", str(manifest), "--wait")
    assert "modelendpoint.pilothouse.dev/iris created" in applied.stdout
    assert "ready at http://127.0.0.1:" in applied.stdout

    table = control_plane.cli("get", "modelendpoints").stdout
    header, row = table.strip().splitlines()[:2]
    assert header.split() == ["NAME", "READY", "REPLICAS", "URL", "AGE"]
    assert row.split()[:3] == ["iris", "True", "1/1"]

    doc = json.loads(control_plane.cli("get", "me", "iris", "-o", "json").stdout)
    url = doc["status"]["url"]
    assert url == f"http://127.0.0.1:{control_plane.gateway_port}/default/iris"
    assert yaml.safe_load(control_plane.cli("get", "me", "iris", "-o", "yaml").stdout)["metadata"]["uid"]

    expected = joblib.load(iris_model).predict(np.array(IRIS_ROWS)).tolist()
    assert infer(url, IRIS_ROWS) == expected

    described = control_plane.cli("describe", "modelendpoint", "iris").stdout
    for fragment in (
        "Conditions:",
        "ReplicasReady",
        "RevisionCreated",
        "RolloutCompleted",
        "Replicas:",
        "Ready",
    ):
        assert fragment in described

    logs = control_plane.cli("logs", "iris").stdout
    assert "iris" in logs and str(iris_model) in logs

    assert "unchanged" in control_plane.cli("apply", "-f", str(manifest)).stdout
    first_pids = model_server_pids(control_plane)
    assert len(first_pids) == 1

    write_manifest(manifest, iris_model, autoscaling={"minReplicas": 2, "maxReplicas": 2})
    assert "configured" in control_plane.cli("apply", "-f", str(manifest), "--wait").stdout
    doc = json.loads(control_plane.cli("get", "me", "iris", "-o", "json").stdout)
    assert doc["metadata"]["generation"] == 2
    assert doc["status"]["latestRevision"] == 1, "a scaling change is not a new revision"
    wait_for(lambda: len(model_server_pids(control_plane)) == 2, what="scaled to 2")
    assert first_pids <= model_server_pids(control_plane), "scaling never restarts a running replica"

    second_model = tmp_path / "iris-v2.joblib"
    shutil.copy(iris_model, second_model)
    write_manifest(manifest, second_model, autoscaling={"minReplicas": 2, "maxReplicas": 2})
    before = model_server_pids(control_plane)
    assert "configured" in control_plane.cli("apply", "-f", str(manifest), "--wait").stdout
    doc = json.loads(control_plane.cli("get", "me", "iris", "-o", "json").stdout)
    assert (doc["status"]["latestRevision"], doc["status"]["stableRevision"]) == (2, 2)
    assert doc["status"]["traffic"] == [
        {"revision": 2, "percent": 100, "readyReplicas": 2, "desiredReplicas": 2}
    ]
    wait_for(lambda: len(model_server_pids(control_plane)) == 2, what="old revision retired")
    assert not before & model_server_pids(control_plane), "revision 1's replicas were replaced"
    assert infer(url, IRIS_ROWS) == expected
    history = control_plane.cli("rollout", "history", "iris").stdout
    assert "iris-v2.joblib" in history and "stable,latest" in history

    running = [psutil.Process(pid) for pid in model_server_pids(control_plane)]
    deleted = control_plane.cli("delete", "modelendpoint", "iris")
    assert "deleted" in deleted.stdout
    assert not [p for p in running if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert httpx.post(f"{url}/v2/models/iris/infer", json={}, timeout=5).status_code == 404
    assert "No resources found" in control_plane.cli("get", "me").stderr


def test_multi_document_apply_from_stdin_and_namespaces(
    control_plane_factory: Callable[..., ControlPlane], iris_model: Path
) -> None:
    plane = control_plane_factory()
    docs = [
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "ModelEndpoint",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"model": {"uri": str(iris_model)}},
        }
        for name, ns in (("a", "team-a"), ("b", "team-b"))
    ]
    result = plane.cli("apply", "-f", "-", "--wait", stdin=yaml.safe_dump_all(docs))
    assert result.stdout.count("created") == 2
    assert plane.cli("get", "me", "-n", "team-a").stdout.count("\n") == 2  # header + 1 row
    everything = plane.cli("get", "me", "-A").stdout
    assert everything.splitlines()[0].split()[0] == "NAMESPACE"
    assert "team-a" in everything and "team-b" in everything
    assert plane.cli("version").stdout.count("Version") == 2
