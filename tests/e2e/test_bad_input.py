"""Every bad input from the issue: a clear message naming the field or file, exit 1, nothing stored."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import joblib
import pytest

from support import ControlPlane, free_port

VALID = """apiVersion: pilothouse.dev/v1alpha1
kind: ModelEndpoint
metadata:
  name: {name}
spec:
  model:
    uri: {uri}
"""


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> ControlPlane:
    from support import kill_tree_of_data_dir

    root = tmp_path_factory.mktemp("bad-input")
    plane = ControlPlane(root / "data").start()
    yield plane  # type: ignore[misc]
    plane.stop()
    kill_tree_of_data_dir(root)


def apply_text(
    plane: ControlPlane, tmp_path: Path, text: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return plane.cli("apply", "-f", str(path), *extra, check=False)


CASES = [
    ("malformed yaml", "apiVersion: pilothouse.dev/v1alpha1\nkind: [unclosed\n", ["malformed YAML", "line"]),
    ("unknown kind", VALID.replace("ModelEndpoint", "Pod"), ["kind: unknown kind 'Pod'"]),
    (
        "unknown apiVersion",
        VALID.replace("pilothouse.dev/v1alpha1", "apps/v1"),
        ["apiVersion: unknown apiVersion"],
    ),
    ("unknown field", VALID + "  replicas: 3\n", ["spec.replicas: unknown field"]),
    (
        "mistyped field",
        VALID + "  autoscaling:\n    minReplica: 1\n",
        ["spec.autoscaling.minReplica: unknown field"],
    ),
    ("invalid name", VALID.replace("{name}", "Iris_Model"), ["metadata.name: invalid name 'Iris_Model'"]),
    ("negative replicas", VALID + "  autoscaling:\n    minReplicas: -1\n", ["spec.autoscaling.minReplicas"]),
    (
        "min > max",
        VALID + "  autoscaling:\n    minReplicas: 4\n    maxReplicas: 2\n",
        ["minReplicas (4) must be <= maxReplicas (2)"],
    ),
    (
        "bad quantity",
        VALID + "  resources:\n    memory: 32GB\n",
        ["spec.resources.memory: not a Kubernetes quantity"],
    ),
    (
        "missing model file",
        VALID.replace("{uri}", "/nonexistent/model.joblib"),
        ["spec.model.uri", "/nonexistent/model.joblib"],
    ),
    (
        "image model locally",
        VALID.replace("    uri: {uri}\n", "").replace("  model:\n", "  model: registry.example/llm:1\n"),
        ["spec.model.image", "Kubernetes"],
    ),
]


@pytest.mark.parametrize(("case", "text", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_rejected_with_named_field(
    plane: ControlPlane, iris_model: Path, tmp_path: Path, case: str, text: str, fragments: list[str]
) -> None:
    text = text.replace("{name}", "bad").replace("{uri}", str(iris_model))
    result = apply_text(plane, tmp_path, text)
    assert result.returncode == 1, f"{case}: expected exit 1, got {result.returncode}: {result.stdout}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{case}: {fragment!r} not in {result.stderr!r}"
    assert "Traceback" not in result.stderr
    assert "No resources found" in plane.cli("get", "me").stderr, f"{case}: something was stored"
    assert httpx.get(f"{plane.url}/healthz").status_code == 200


def test_multi_document_with_one_bad_document_stores_nothing(
    plane: ControlPlane, iris_model: Path, tmp_path: Path
) -> None:
    good = VALID.format(name="good", uri=iris_model)
    bad = VALID.format(name="bad", uri="/nonexistent/model.joblib")
    result = apply_text(plane, tmp_path, good + "---\n" + bad)
    assert result.returncode == 1
    assert "/nonexistent/model.joblib" in result.stderr
    assert "No resources found" in plane.cli("get", "me").stderr


def test_file_that_is_not_a_model_fails_the_wait_naming_the_file(plane: ControlPlane, tmp_path: Path) -> None:
    not_a_model = tmp_path / "not-a-model.joblib"
    joblib.dump({"weights": [1, 2, 3]}, not_a_model)
    text = VALID.format(name="broken", uri=not_a_model)
    result = apply_text(plane, tmp_path, text, "--wait", "--timeout", "60")
    assert result.returncode == 1
    assert "ModelLoadFailed" in result.stderr
    assert str(not_a_model) in result.stderr
    described = plane.cli("describe", "me", "broken").stdout
    assert "ModelLoadFailed" in described
    plane.cli("delete", "me", "broken")


def test_missing_manifest_file_and_unknown_kind_on_get(plane: ControlPlane, tmp_path: Path) -> None:
    result = plane.cli("apply", "-f", str(tmp_path / "nope.yaml"), check=False)
    assert result.returncode == 1 and "nope.yaml" in result.stderr
    result = plane.cli("get", "pods", check=False)
    assert result.returncode == 1 and "unknown kind 'pods'" in result.stderr
    result = plane.cli("get", "me", "ghost", check=False)
    assert result.returncode == 1 and "ghost" in result.stderr


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pilothouse.cli", "--server", f"http://127.0.0.1:{free_port()}", "get", "me"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach the Pilothouse server" in result.stderr


def test_port_already_taken(control_plane_factory: Callable[..., ControlPlane], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        plane = control_plane_factory(start=False)
        plane.port = taken.getsockname()[1]
        plane.start(wait=False)
        assert plane.proc is not None
        assert plane.proc.wait(60) == 1
    assert f"port {plane.port} on 127.0.0.1 is already in use" in plane.log()


def test_second_up_on_same_data_dir_refused(
    control_plane_factory: Callable[..., ControlPlane], tmp_path: Path
) -> None:
    first = control_plane_factory()
    second = control_plane_factory(data_dir=first.data_dir, start=False)
    second.start(wait=False)
    assert second.proc is not None
    assert second.proc.wait(60) == 1
    assert "already using the data dir" in second.log()
    assert first.healthy()
