"""The real process: ``python -m pilothouse.serving.modelserver`` with --port and --fd, and load failures."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import joblib
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pilothouse.serving.modelserver import EXIT_MODEL_LOAD_FAILED, TERMINATION_LOG_ENV

if TYPE_CHECKING:
    from conftest import IrisModel, Spawned, Spawner

pytestmark = pytest.mark.slow

EXIT_DEADLINE_S = 60


def infer(client: httpx.Client, base: str, rows: list[list[float]]) -> httpx.Response:
    body = {
        "id": "x1",
        "inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}],
    }
    return client.post(f"{base}/v2/models/iris/infer", json=body)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_port_mode_serves_predictions_and_metrics(iris_server: Spawned, iris: IrisModel) -> None:
    base = iris_server.url
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{base}/v2/health/live").status_code == 200
        assert client.get(f"{base}/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
        before = metric_samples(client.get(f"{base}/metrics").text)
        ok_before = before.get(("pilothouse_model_requests_total", (("code", "200"), ("model", "iris"))), 0.0)
        rows = iris.X.tolist()
        for start in range(0, len(rows), 50):
            resp = infer(client, base, rows[start : start + 50])
            assert resp.status_code == 200, resp.text
            assert resp.json()["id"] == "x1"
            expected = iris.model.predict(np.array(rows[start : start + 50]))
            assert resp.json()["outputs"][0]["data"] == expected.tolist()
        after = metric_samples(client.get(f"{base}/metrics").text)
    assert after[("pilothouse_model_requests_total", (("code", "200"), ("model", "iris")))] == ok_before + 3
    assert after[("pilothouse_model_load_duration_seconds", (("model", "iris"),))] > 0
    assert ("process_resident_memory_bytes", ()) in after


def test_no_metrics_flag_turns_metrics_off_and_the_default_keeps_them(
    spawn: Spawner, iris: IrisModel, iris_server: Spawned
) -> None:
    port = spawn.free_port()
    args = ["--name", "iris", "--model-uri", str(iris.path), "--format", "sklearn", "--port", str(port)]
    quiet = spawn([*args, "--no-metrics"], base_url=f"http://127.0.0.1:{port}")
    quiet.wait_ready()
    with httpx.Client(timeout=10) as client:
        assert infer(client, quiet.url, [[6.7, 3.0, 5.2, 2.3]]).status_code == 200
        off = client.get(f"{quiet.url}/metrics")
        assert off.status_code == 404 and off.json() == {"error": "no route /metrics"}
        on = client.get(f"{iris_server.url}/metrics")  # started without the flag: the default
        assert on.status_code == 200 and "pilothouse_model_requests_total" in on.text


def test_bad_requests_do_not_take_the_server_down(iris_server: Spawned) -> None:
    base = iris_server.url
    with httpx.Client(timeout=10) as client:
        bad = client.post(f"{base}/v2/models/iris/infer", content=b'{"inputs": [{"name": "input-0"')
        assert bad.status_code == 400
        assert "not valid JSON" in bad.json()["error"]
        short = infer(client, base, [[1.0, 2.0, 3.0]])
        assert short.status_code == 400
        assert "input 'input-0'" in short.json()["error"]
        assert client.post(f"{base}/v2/models/other/infer", json={}).status_code == 404
        assert infer(client, base, [[5.1, 3.5, 1.4, 0.2]]).status_code == 200
        assert client.get(f"{base}/v2/health/ready").status_code == 200
    assert iris_server.proc.poll() is None


def test_fd_mode_serves_on_an_inherited_socket(spawn: Spawner, iris: IrisModel) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        fd = sock.fileno()
        server = spawn(
            ["--name", "iris", "--model-uri", str(iris.path), "--format", "sklearn", "--fd", str(fd)],
            pass_fds=(fd,),
            base_url=f"http://127.0.0.1:{port}",
        )
    # Our copy is closed; the child owns the only listening socket now.
    server.wait_ready()
    with httpx.Client(timeout=10) as client:
        resp = infer(client, server.url, [[6.7, 3.0, 5.2, 2.3]])
    assert resp.status_code == 200
    assert resp.json()["outputs"][0]["data"] == iris.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()


def test_onnx_and_python_processes(
    spawn: Spawner, iris: IrisModel, iris_onnx: Path, python_model: Path
) -> None:
    p1, p2 = spawn.free_port(), spawn.free_port()
    onnx = spawn(
        ["--name", "iris", "--model-uri", str(iris_onnx), "--format", "onnx", "--port", str(p1)],
        base_url=f"http://127.0.0.1:{p1}",
    )
    py_args = ["--name", "dbl", "--model-uri", str(python_model), "--format", "python"]
    py = spawn(
        [*py_args, "--class-name", "Doubler", "--port", str(p2), "--log-level", "warning"],
        base_url=f"http://127.0.0.1:{p2}",
    )
    onnx.wait_ready()
    py.wait_ready()
    with httpx.Client(timeout=10) as client:
        resp = infer(client, f"http://127.0.0.1:{p1}", iris.X[:30].tolist())
        assert resp.json()["outputs"][0]["data"] == iris.model.predict(iris.X[:30]).tolist()
        body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.5, 2]}]}
        out = client.post(f"http://127.0.0.1:{p2}/v2/models/dbl/infer", json=body).json()["outputs"][0]
        assert out == {"name": "output-0", "datatype": "FP32", "shape": [1, 2], "data": [3.0, 4.0]}


def _expect_load_failure(spawn: Spawner, tmp_path: Path, args: list[str]) -> tuple[str, str]:
    log = tmp_path / "termination-log"
    proc = spawn([*args, "--port", str(spawn.free_port())], env={TERMINATION_LOG_ENV: str(log)})
    assert proc.proc.wait(timeout=EXIT_DEADLINE_S) == EXIT_MODEL_LOAD_FAILED
    line = log.read_text()
    assert line.count("\n") == 1
    assert line.startswith("ModelLoadFailed: ")
    assert "Traceback" not in proc.stderr()
    assert line.strip() in proc.stderr()
    return line.strip(), proc.stderr()


def test_missing_file_exits_3(spawn: Spawner, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model.joblib"
    line, _ = _expect_load_failure(
        spawn, tmp_path, ["--name", "m", "--model-uri", missing.as_uri(), "--format", "sklearn"]
    )
    assert line == f"ModelLoadFailed: file not found: {missing}"


def test_non_model_files_exit_3(spawn: Spawner, tmp_path: Path) -> None:
    dumped = tmp_path / "dict.joblib"
    joblib.dump({"not": "a model"}, dumped)
    line, _ = _expect_load_failure(
        spawn, tmp_path, ["--name", "m", "--model-uri", str(dumped), "--format", "sklearn"]
    )
    assert line.startswith(f"ModelLoadFailed: {dumped} is not a scikit-learn model")

    text = tmp_path / "readme.txt"
    text.write_text("just text\nwith two lines\n")
    line, _ = _expect_load_failure(
        spawn, tmp_path, ["--name", "m", "--model-uri", str(text), "--format", "sklearn"]
    )
    assert line.startswith(f"ModelLoadFailed: {text} is not a scikit-learn model (unpickling failed:")

    line, _ = _expect_load_failure(
        spawn, tmp_path, ["--name", "m", "--model-uri", str(text), "--format", "onnx"]
    )
    assert line.startswith(f"ModelLoadFailed: {text} is not an ONNX model")


def test_port_and_fd_are_mutually_exclusive(spawn: Spawner) -> None:
    proc = spawn(["--name", "m", "--model-uri", "/x", "--format", "sklearn", "--port", "1", "--fd", "3"])
    assert proc.proc.wait(timeout=EXIT_DEADLINE_S) == 2
    assert "not allowed with argument" in proc.stderr()
