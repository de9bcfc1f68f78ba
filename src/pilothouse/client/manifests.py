"""Reading manifests the way ``kubectl apply -f`` does: a file, a directory, or ``-``, multi-document YAML.

Each document is validated locally first, so a typo in the third document of a file is reported with
the file and field before anything is sent. Relative paths are resolved against the manifest's own
directory, as docker compose does, so ``apply -f`` works from any directory: a model's ``uri:
./model.joblib``, and a Job's ``workingDir`` (which defaults to the manifest's directory, so a Job's
``command: [python, train.py]`` finds the script beside the manifest).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pilothouse.api.errors import FieldProblem, ManifestError
from pilothouse.api.registry import Resource, parse_manifest

_SUFFIXES = {".yaml", ".yml", ".json"}


@dataclass(frozen=True)
class LoadedManifest:
    source: str
    """``path`` or ``path#N`` (N = document index) for messages."""
    object: Resource


def _files(target: str) -> list[Path]:
    path = Path(target)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
    if not path.exists():
        raise ManifestError([FieldProblem("", "no such file or directory")], target)
    return [path]


def _resolve_model_path(doc: dict[str, Any], base: Path) -> None:
    model = (doc.get("spec") or {}).get("model") if isinstance(doc.get("spec"), dict) else None
    if isinstance(model, dict) and isinstance(model.get("uri"), str):
        uri: str = model["uri"]
        if "://" not in uri and not Path(uri).is_absolute() and (base / uri).exists():
            model["uri"] = str((base / uri).resolve())  # a name that is no file (a packaged model) stays


def _resolve_working_dir(doc: dict[str, Any], base: Path) -> None:
    spec = doc.get("spec")
    if doc.get("kind") != "Job" or not isinstance(spec, dict) or "image" in spec:
        return
    working_dir = spec.get("workingDir")
    if working_dir is None:
        spec["workingDir"] = str(base.resolve())
    elif isinstance(working_dir, str) and not Path(working_dir).is_absolute():
        spec["workingDir"] = str((base / working_dir).resolve())


def _parse_text(text: str, source: str, base: Path) -> list[LoadedManifest]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError([FieldProblem("", f"malformed YAML{where}: {problem}")], source) from exc
    out = []
    for index, doc in enumerate(docs):
        label = source if len(docs) == 1 else f"{source}#{index}"
        if isinstance(doc, dict):
            _resolve_model_path(doc, base)
            _resolve_working_dir(doc, base)
        out.append(LoadedManifest(label, parse_manifest(doc, label)))
    return out


def load_manifests(targets: list[str]) -> list[LoadedManifest]:
    """Every object in the targets, validated; raises ``ManifestError`` naming the file and field."""
    out: list[LoadedManifest] = []
    for target in targets:
        if target == "-":
            out.extend(_parse_text(sys.stdin.read(), "<stdin>", Path.cwd()))
            continue
        for path in _files(target):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ManifestError([FieldProblem("", f"cannot read: {exc}")], str(path)) from exc
            out.extend(_parse_text(text, str(path), path.parent))
    if not out:
        raise ManifestError([FieldProblem("", "no manifests found")], ", ".join(targets))
    return out
