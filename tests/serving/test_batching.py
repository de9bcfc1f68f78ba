"""Dynamic batching: correctness of split results, the size and latency bounds, metrics, fallback, flags."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pilothouse.serving.loaders import load_model
from pilothouse.serving.modelserver import cli
from pilothouse.serving.modelserver.app import ModelServerApp
from pilothouse.serving.modelserver.metrics import ModelMetrics

if TYPE_CHECKING:
    from conftest import Spawner

RECORDER_SOURCE = """
import numpy as np


class Recorder:
    def __init__(self):
        self.calls = []

    def predict(self, x):
        self.calls.append(x.shape[0])
        if (x < 0).any():
            raise ValueError("negative values are not allowed")
        return {"double": x * 2, "rowsum": x.sum(axis=1)}


class Scalar:
    def predict(self, x):
        return np.asarray(x.sum())
"""


@pytest.fixture(scope="module")
def recorder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("batching") / "recorder.py"
    path.write_text(RECORDER_SOURCE)
    return path


def make_app(path: Path, cls: str = "Recorder", **batching: Any) -> ModelServerApp:
    return ModelServerApp(
        "m",
        load_model(str(path), "python", cls),
        metrics=ModelMetrics("m", process_metrics=False),
        **batching,
    )


def calls(app: ModelServerApp) -> list[int]:
    result: list[int] = app.model.instance.calls  # type: ignore[attr-defined]
    return result


def body(rows: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
        ]
    }


async def post_all(
    app: ModelServerApp, bodies: list[dict[str, Any]], path: str = "/v2/models/m/infer"
) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
        return list(await asyncio.gather(*(client.post(path, json=b) for b in bodies)))


def samples(app: ModelServerApp) -> dict[str, float]:
    text = app.metrics.exposition().decode()
    return {
        s.name: s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name.startswith("pilothouse_model_batch_size") and not s.labels.get("le")
    }


def outputs(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    return {o["name"]: o for o in resp.json()["outputs"]}


@pytest.mark.parametrize("worker", ["loop", "thread"])
def test_concurrent_requests_get_exactly_their_own_rows(recorder_path: Path, worker: str) -> None:
    rng = np.random.default_rng(7)
    sizes = [1, 3, 2, 5, 1, 4, 2, 1, 3, 2]
    inputs = [rng.uniform(0, 1, size=(n, 3)).round(3) + 1.0 * i for i, n in enumerate(sizes)]
    app = make_app(recorder_path, max_batch_size=64, max_batch_latency_ms=200, batch_worker=worker)
    batched = asyncio.run(post_all(app, [body(x) for x in inputs]))
    plain = make_app(recorder_path)
    unbatched = asyncio.run(post_all(plain, [body(x) for x in inputs]))
    for x, got, want in zip(inputs, batched, unbatched, strict=True):
        out = outputs(got)
        assert out == outputs(want)
        assert out["double"]["shape"] == [len(x), 3]
        np.testing.assert_allclose(out["double"]["data"], (x * 2).ravel())
        np.testing.assert_allclose(out["rowsum"]["data"], x.sum(axis=1))
    assert calls(plain) == sizes
    assert sum(calls(app)) == sum(sizes)
    assert len(calls(app)) < len(sizes), calls(app)  # they were batched
    stats = samples(app)
    assert stats["pilothouse_model_batch_size_count"] == len(calls(app))
    assert stats["pilothouse_model_batch_size_sum"] == sum(sizes)
    assert samples(plain)["pilothouse_model_batch_size_count"] == 0  # the unbatched path observes nothing


def test_batches_never_exceed_max_batch_size(recorder_path: Path) -> None:
    app = make_app(recorder_path, max_batch_size=8, max_batch_latency_ms=200)
    sizes = [3, 3, 3, 3, 3, 2, 10, 1]
    inputs = [np.full((n, 2), float(i)) for i, n in enumerate(sizes)]
    responses = asyncio.run(post_all(app, [body(x) for x in inputs]))
    for x, resp in zip(inputs, responses, strict=True):
        np.testing.assert_allclose(outputs(resp)["double"]["data"], (x * 2).ravel())
    assert all(n <= 8 for n in calls(app) if n != 10), calls(app)
    assert 10 in calls(app)  # bigger than the maximum: predicted alone
    assert sum(calls(app)) == sum(sizes)
    assert samples(app)["pilothouse_model_batch_size_count"] == len(calls(app))


def test_a_full_batch_does_not_wait_for_the_timer(recorder_path: Path) -> None:
    app = make_app(recorder_path, max_batch_size=4, max_batch_latency_ms=1000)
    started = time.perf_counter()
    responses = asyncio.run(post_all(app, [body(np.ones((1, 2))) for _ in range(4)]))
    assert all(r.status_code == 200 for r in responses)
    assert time.perf_counter() - started < 0.9
    assert calls(app) == [4]


@pytest.mark.parametrize("worker", ["loop", "thread"])
def test_a_lone_request_waits_at_most_max_latency(recorder_path: Path, worker: str) -> None:
    latency_ms = 40.0
    app = make_app(recorder_path, max_batch_size=32, max_batch_latency_ms=latency_ms, batch_worker=worker)
    asyncio.run(post_all(app, [body(np.ones((1, 2)))]))  # warm-up
    started = time.perf_counter()
    (resp,) = asyncio.run(post_all(app, [body(np.ones((2, 2)))]))
    elapsed = time.perf_counter() - started
    assert resp.status_code == 200
    assert elapsed < 10 * latency_ms / 1000, elapsed  # loose: no flaky timing
    assert calls(app) == [1, 2]


@pytest.mark.parametrize("worker", ["loop", "thread"])
def test_a_poisoned_request_fails_alone(recorder_path: Path, worker: str) -> None:
    app = make_app(recorder_path, max_batch_size=64, max_batch_latency_ms=200, batch_worker=worker)
    inputs = [np.full((2, 2), 1.0), np.full((1, 2), 2.0), np.full((3, 2), -1.0), np.full((1, 2), 4.0)]
    responses = asyncio.run(post_all(app, [body(x) for x in inputs]))
    assert [r.status_code for r in responses] == [200, 200, 400, 200]
    assert "negative values are not allowed" in responses[2].json()["error"]
    for x, resp in zip(inputs, responses, strict=True):
        if resp.status_code == 200:
            np.testing.assert_allclose(outputs(resp)["double"]["data"], (x * 2).ravel())
    assert calls(app) == [7, 2, 1, 3, 1]  # the failed batch, then each request on its own
    assert samples(app)["pilothouse_model_batch_size_count"] == 5


def test_outputs_that_are_not_per_row_fall_back_to_single_predictions(recorder_path: Path) -> None:
    app = make_app(recorder_path, "Scalar", max_batch_size=16, max_batch_latency_ms=100)
    inputs = [np.full((2, 2), 1.0), np.full((1, 2), 5.0)]
    responses = asyncio.run(post_all(app, [body(x) for x in inputs]))
    assert [outputs(r)["output-0"]["data"] for r in responses] == [[4.0], [10.0]]


def test_incompatible_shapes_and_dtypes_batch_separately(recorder_path: Path) -> None:
    app = make_app(recorder_path, max_batch_size=64, max_batch_latency_ms=100)
    a, b, c = np.ones((2, 2)), np.ones((1, 3)), np.ones((2, 2))
    bodies = [body(a), body(b), body(c)]
    bodies[2]["inputs"][0]["datatype"] = "FP32"
    responses = asyncio.run(post_all(app, bodies))
    assert [outputs(r)["double"]["shape"] for r in responses] == [[2, 2], [1, 3], [2, 2]]
    assert outputs(responses[2])["double"]["datatype"] == "FP32"
    assert sorted(calls(app)) == [1, 2, 2]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--max-batch-size", "1"], "--max-batch-size must be between 2 and 4096, got 1"),
        (["--max-batch-size", "5000"], "--max-batch-size must be between 2 and 4096"),
        (["--max-batch-size", "8", "--max-batch-latency-ms", "0"], "--max-batch-latency-ms must be > 0"),
        (["--max-batch-size", "8", "--max-batch-latency-ms", "1500"], "<= 1000"),
        (["--max-batch-size", "8", "--max-batch-latency-ms", "nan"], "--max-batch-latency-ms must be > 0"),
        (["--max-batch-latency-ms", "5"], "--max-batch-latency-ms needs --max-batch-size"),
        (["--batch-worker", "thread"], "--batch-worker needs --max-batch-size"),
        (["--max-batch-size", "x"], "invalid int value"),
    ],
)
def test_batching_flags_are_validated_before_loading(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--name", "m", "--model-uri", "/does/not/exist", "--format", "sklearn", "--port", "1"]
    with pytest.raises(SystemExit) as exc:
        cli.main([*base, *argv])
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_batching_defaults() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["--name", "m", "--model-uri", "x", "--format", "onnx", "--port", "1"])
    cli.validate_batching(parser, args)
    assert args.max_batch_size is None
    args = parser.parse_args(
        ["--name", "m", "--model-uri", "x", "--format", "onnx", "--port", "1", "--max-batch-size", "16"]
    )
    cli.validate_batching(parser, args)
    assert (args.max_batch_size, args.max_batch_latency_ms) == (16, 5.0)


@pytest.mark.slow
def test_batching_in_a_real_process(spawn: Spawner, recorder_path: Path) -> None:
    port = spawn.free_port()
    server = spawn(
        ["--name", "m", "--model-uri", str(recorder_path), "--format", "python", "--class-name", "Recorder",
         "--port", str(port), "--max-batch-size", "16", "--max-batch-latency-ms", "20"],
        base_url=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    server.wait_ready()

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post("/v2/models/m/infer", json=body(np.full((2, 2), float(i))))
                        for i in range(12)
                    )
                )
            )

    responses = asyncio.run(go())
    for i, resp in enumerate(responses):
        assert outputs(resp)["double"]["data"] == [2.0 * i] * 4
    with httpx.Client(timeout=10) as client:
        text = client.get(f"{server.url}/metrics").text
    got = {
        s.name: s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name.startswith("pilothouse_model_batch_size_") and not s.labels.get("le")
    }
    assert got["pilothouse_model_batch_size_sum"] == 24
    assert got["pilothouse_model_batch_size_count"] <= 12
    assert "dynamic batching on: at most 16 rows" in server.stderr()
