"""The one small interface every model format hides behind.

The model server only ever sees a :class:`LoadedModel`: something with ``predict`` and a little
metadata (platform, input/output tensor specs). Loaders turn a path into one and report every
failure as a :class:`ModelLoadError` whose message is a single human-readable line, because that
line ends up in the termination log the platform shows to the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.generic]
Prediction = Array | Mapping[str, Array]


class ModelLoadError(Exception):
    """The model could not be loaded; ``str(err)`` is a one-line message for the user."""


class InvalidInputError(ValueError):
    """The model rejected the request's input (wrong width, wrong type); maps to HTTP 400."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """Open Inference Protocol tensor metadata; ``-1`` in ``shape`` means "any size"."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@runtime_checkable
class LoadedModel(Protocol):
    """A model ready to serve.

    ``predict`` takes the (single) input tensor and returns either one array (named after
    ``outputs[0]``) or a mapping of output name to array.
    """

    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def predict(self, x: Array) -> Prediction: ...


@runtime_checkable
class TextEmbedder(Protocol):
    """A :class:`LoadedModel` that embeds strings; the model server then also answers ``/v1/embeddings``.

    ``predict`` takes a BYTES tensor of strings and returns FP32 ``[n, dimension]``.
    """

    dimension: int

    def count_tokens(self, texts: list[str]) -> list[int]: ...


class ModelLoader(Protocol):
    """Turns a local path into a :class:`LoadedModel` or raises :class:`ModelLoadError`."""

    def load(self, path: Path) -> LoadedModel: ...


def resolve_model_path(uri: str) -> Path:
    """Accept a plain path or a ``file://`` URI and return an absolute path (not checked)."""
    if uri.startswith("file:"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise ModelLoadError(f"unsupported file URI host {parsed.netloc!r} in {uri}")
        return Path(unquote(parsed.path)).absolute()
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise ModelLoadError(f"unsupported model URI scheme {scheme!r} (only local paths and file://)")
    return Path(uri).expanduser().absolute()


def require_file(path: Path) -> None:
    """Raise the canonical "file not found" error unless ``path`` is a readable regular file."""
    if not path.exists():
        raise ModelLoadError(f"file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"not a regular file: {path}")


def one_line(text: str) -> str:
    """Collapse whitespace so a message fits the one-line termination log."""
    return " ".join(text.split())
