"""``render``: the native Kubernetes objects the operator would create for some manifests, offline.

Like ``helm template``: no cluster, no server, nothing stored. Useful to review what a manifest turns
into, to diff revisions, and to see a cluster-only problem (a model file on this laptop) before applying.
Owner references are omitted because the objects have no uid until the API server stores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pilothouse.api.errors import ManifestError
from pilothouse.api.job import Job
from pilothouse.api.registry import Resource
from pilothouse.cli.context import command, err, fail, out
from pilothouse.client.manifests import LoadedManifest, load_manifests
from pilothouse.runtime.kubernetes.builders import KubernetesConfig
from pilothouse.runtime.kubernetes.builders import render as render_resource
from pilothouse.runtime.kubernetes.yamlio import dump_all


def _for_cluster(manifest: LoadedManifest, config: KubernetesConfig) -> Resource:
    """Undo what only makes sense locally: a command Job's working directory on this machine.

    ``load_manifests`` points a command Job's ``workingDir`` at the manifest's directory so that
    ``command: [python, train.py]`` finds the script locally. In a cluster pod that directory does not
    exist (and cannot be created on a read-only root filesystem), so ``render`` drops it and warns.
    """
    obj = manifest.object
    if not isinstance(obj, Job) or obj.spec.image is not None:
        return obj
    source = manifest.source.split("#", 1)[0]
    local_dir = str((Path.cwd() if source == "<stdin>" else Path(source).parent).resolve())
    err.print(
        f"warning: {manifest.source}: spec.command runs in {config.job_base_image} on Kubernetes, "
        "where files beside the manifest do not exist; put the code in an image (spec.image) for a cluster",
        markup=False,
        highlight=False,
    )
    if obj.spec.workingDir == local_dir:
        return obj.model_copy(update={"spec": obj.spec.model_copy(update={"workingDir": None})})
    return obj


@command
def render(
    filename: Annotated[list[str], typer.Option("--filename", "-f", help="File, directory or - for stdin")],
    kubernetes: Annotated[
        bool,
        typer.Option("--kubernetes/--no-kubernetes", help="Render for Kubernetes (the only target today)"),
    ] = True,
) -> None:
    """Print the Kubernetes objects the operator would create for manifests, as multi-document YAML."""
    if not kubernetes:
        fail("nothing to render: --kubernetes is the only render target")
    config = KubernetesConfig()
    chunks: list[str] = []
    for manifest in load_manifests(filename):
        try:
            objects = render_resource(_for_cluster(manifest, config), config)
        except ManifestError as exc:
            raise ManifestError(exc.problems, manifest.source) from None
        obj = manifest.object
        header = f"# Source: {manifest.source} ({obj.kind} {obj.metadata.name})\n"
        chunks.append(dump_all(objects, header))
    out.print("".join(chunks), end="", markup=False, emoji=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(render)
