"""The ASGI app in-process through ``httpx.ASGITransport``: routes, OIP bodies, errors, metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pilothouse.serving.loaders import load_model
from pilothouse.serving.modelserver.app import ModelServerApp
from pilothouse.serving.modelserver.metrics import ModelMetrics, NoMetrics

if TYPE_CHECKING:
    from conftest import IrisModel


def request(app: ModelServerApp, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def infer_body(rows: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}],
        **extra,
    }


@pytest.fixture
def app(iris: IrisModel) -> ModelServerApp:
    metrics = ModelMetrics("iris", process_metrics=False)
    return ModelServerApp("iris", load_model(str(iris.path), "sklearn"), metrics=metrics, load_seconds=0.25)


def test_health_and_metadata(app: ModelServerApp) -> None:
    assert request(app, "GET", "/v2/health/live").json() == {"live": True}
    assert request(app, "GET", "/v2/health/ready").json() == {"ready": True}
    assert request(app, "GET", "/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    server = request(app, "GET", "/v2").json()
    assert server["name"] == "pilothouse-modelserver"
    meta = request(app, "GET", "/v2/models/iris")
    assert meta.headers["content-type"] == "application/json"
    assert meta.json() == {
        "name": "iris",
        "versions": [],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1]}],
    }


def test_not_ready_answers_503(app: ModelServerApp) -> None:
    app.ready = False
    assert request(app, "GET", "/v2/health/ready").status_code == 503
    assert request(app, "GET", "/v2/models/iris/ready").json() == {"name": "iris", "ready": False}
    assert request(app, "GET", "/v2/health/live").status_code == 200


def test_infer_matches_local_predict(app: ModelServerApp, iris: IrisModel) -> None:
    rows = iris.X[::10].tolist()
    resp = request(app, "POST", "/v2/models/iris/infer", json=infer_body(rows, id="req-7"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model_name"] == "iris"
    assert body["id"] == "req-7"
    (out,) = body["outputs"]
    assert out["name"] == "output-0"
    assert out["datatype"] == "INT64"
    assert out["shape"] == [len(rows)]
    assert out["data"] == iris.model.predict(np.array(rows)).tolist()


def test_infer_accepts_flat_data_and_omits_missing_id(app: ModelServerApp, iris: IrisModel) -> None:
    body = {
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": iris.X[:2].ravel().tolist()}]
    }
    resp = request(app, "POST", "/v2/models/iris/infer", json=body)
    assert resp.status_code == 200, resp.text
    assert "id" not in resp.json()
    assert resp.json()["outputs"][0]["data"] == iris.model.predict(iris.X[:2]).tolist()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "non-empty 'inputs'"),
        (b'{"inputs": [7]}', "inputs[0] must be an object"),
        (b'{"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}', "inputs[0]: 'name'"),
        (
            b'{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3]}]}',
            "input 'input-0': shape [1, 4] needs 4 elements but data has 3",
        ),
        (
            b'{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "COMPLEX", "data": [1, 2, 3, 4]}]}',
            "input 'input-0': unsupported datatype 'COMPLEX'",
        ),
        (
            b'{"inputs": [{"name": "input-0", "shape": [1, -4], "datatype": "FP64", "data": [1]}]}',
            "input 'input-0': 'shape' must be a list of non-negative integers",
        ),
        (
            b'{"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1, "a"]}]}',
            "input 'input-0': data is not valid FP64",
        ),
        (
            b'{"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3]]}]}',
            "input 'input-0': data is not valid FP64",
        ),
        (
            b'{"inputs": [{"name": "input-0", "shape": [1], "datatype": "UINT8", "data": [300]}]}',
            "input 'input-0': data is not valid UINT8",
        ),
        (
            b'{"inputs": [{"name": "in", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}',
            "input 'in' rejected by the model: X has 3 features",
        ),
        (
            b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},'
            b' {"name": "b", "shape": [1], "datatype": "FP64", "data": [1]}]}',
            "exactly one input tensor",
        ),
        (
            b'{"id": 5, "inputs": [{"name": "a", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}',
            "'id' must be a string",
        ),
        (
            b'{"outputs": [{"name": "nope"}], "inputs": [{"name": "a", "shape": [1, 4], "datatype": "FP64",'
            b' "data": [1, 2, 3, 4]}]}',
            "unknown output(s) nope; this model produces output-0",
        ),
    ],
)
def test_bad_requests_are_400_with_a_clear_error(app: ModelServerApp, body: bytes, needle: str) -> None:
    resp = request(app, "POST", "/v2/models/iris/infer", content=body)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]


def test_unknown_model_and_routes(app: ModelServerApp) -> None:
    resp = request(app, "POST", "/v2/models/other/infer", json=infer_body([[1, 2, 3, 4]]))
    assert resp.status_code == 404
    assert resp.json() == {"error": "model 'other' not found; this server serves 'iris'"}
    assert request(app, "GET", "/v2/models/other").status_code == 404
    assert request(app, "GET", "/v2/models/other/ready").status_code == 404
    assert request(app, "GET", "/nope").json() == {"error": "no route /nope"}
    not_allowed = request(app, "GET", "/v2/models/iris/infer")
    assert not_allowed.status_code == 405
    assert not_allowed.headers["allow"] == "POST"


def test_body_limit(iris: IrisModel) -> None:
    small = ModelServerApp(
        "iris", load_model(str(iris.path), "sklearn"), metrics=ModelMetrics("iris"), max_body_bytes=64
    )
    resp = request(small, "POST", "/v2/models/iris/infer", json=infer_body([[1.0, 2.0, 3.0, 4.0]] * 10))
    assert resp.status_code == 413
    assert "larger than 64 bytes" in resp.json()["error"]


def test_requested_outputs_and_multi_output_models(python_model: Path) -> None:
    app = ModelServerApp("heads", load_model(str(python_model), "python", "TwoHeads"))
    body = {
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]}],
        "outputs": [{"name": "shifted"}],
    }
    resp = request(app, "POST", "/v2/models/heads/infer", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["outputs"] == [
        {"name": "shifted", "datatype": "INT32", "shape": [2, 2], "data": [2, 3, 4, 5]}
    ]
    meta = request(app, "GET", "/v2/models/heads").json()
    assert meta["platform"] == "python"
    assert meta["inputs"] == []


def test_python_model_errors_map_to_400_and_500(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "class Model:\n"
        "    def predict(self, x):\n"
        "        if x.shape[0] > 1:\n"
        "            raise ValueError('one row at a time')\n"
        "        raise KeyError('bug')\n"
    )
    app = ModelServerApp("m", load_model(str(src), "python"))
    one = {"inputs": [{"name": "x", "shape": [1], "datatype": "BOOL", "data": [True]}]}
    two = {"inputs": [{"name": "x", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}
    assert request(app, "POST", "/v2/models/m/infer", json=two).json() == {
        "error": "input 'x' rejected by the model: one row at a time"
    }
    resp = request(app, "POST", "/v2/models/m/infer", json=one)
    assert resp.status_code == 500
    assert resp.json() == {"error": "prediction failed: KeyError: 'bug'"}


def test_onnx_model_served_in_process(iris: IrisModel, iris_onnx: Path) -> None:
    app = ModelServerApp("iris", load_model(str(iris_onnx), "onnx"))
    resp = request(app, "POST", "/v2/models/iris/infer", json=infer_body(iris.X[:20].tolist()))
    assert resp.status_code == 200, resp.text
    (out,) = resp.json()["outputs"]
    assert out["name"] == "output_label"
    assert out["datatype"] == "INT64"
    assert out["data"] == iris.model.predict(iris.X[:20]).tolist()
    assert request(app, "GET", "/v2/models/iris").json()["inputs"] == [
        {"name": "X", "datatype": "FP32", "shape": [-1, 4]}
    ]


def test_metrics_count_requests(app: ModelServerApp) -> None:
    for _ in range(3):
        assert (
            request(app, "POST", "/v2/models/iris/infer", json=infer_body([[1, 2, 3, 4]])).status_code == 200
        )
    assert request(app, "POST", "/v2/models/iris/infer", content=b"{").status_code == 400
    assert request(app, "POST", "/v2/models/zzz/infer", content=b"{}").status_code == 404
    resp = request(app, "GET", "/metrics")
    assert resp.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(resp.text)
        for s in fam.samples
    }
    assert samples[("pilothouse_model_requests_total", (("code", "200"), ("model", "iris")))] == 3
    assert samples[("pilothouse_model_requests_total", (("code", "400"), ("model", "iris")))] == 1
    assert samples[("pilothouse_model_errors_total", (("kind", "bad_request"), ("model", "iris")))] == 1
    assert samples[("pilothouse_model_errors_total", (("kind", "not_found"), ("model", "iris")))] == 1
    assert samples[("pilothouse_model_request_duration_seconds_count", (("model", "iris"),))] == 4
    assert samples[("pilothouse_model_load_duration_seconds", (("model", "iris"),))] == 0.25


def test_no_metrics_serves_predictions_but_no_metrics_endpoint(iris: IrisModel) -> None:
    app = ModelServerApp(
        "iris", load_model(str(iris.path), "sklearn"), metrics=NoMetrics(), load_seconds=0.25
    )
    resp = request(app, "POST", "/v2/models/iris/infer", json=infer_body([[1, 2, 3, 4]]))
    assert resp.status_code == 200
    assert request(app, "POST", "/v2/models/iris/infer", content=b"{").status_code == 400
    missing = request(app, "GET", "/metrics")
    assert missing.status_code == 404 and missing.json() == {"error": "no route /metrics"}
    assert request(app, "POST", "/metrics").status_code == 404  # not a 405: the route does not exist
