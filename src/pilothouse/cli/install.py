"""``install kubernetes``: the install bundle (CRDs, namespace, RBAC, operator, gateway) for a cluster.

Printing rather than applying keeps the CLI free of cluster credentials and lets GitOps tools own the
apply: ``pilothouse install kubernetes | kubectl apply -f -``, or commit the ``--output-dir`` tree (the same
files as ``deploy/kubernetes/``) and ``kubectl apply -k`` it.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pilothouse.cli.context import command, err, fail, out
from pilothouse.runtime.kubernetes.builders import KubernetesConfig, install_objects
from pilothouse.runtime.kubernetes.bundle import write_tree
from pilothouse.runtime.kubernetes.yamlio import dump_all


class BundleFormat(StrEnum):
    yaml = "yaml"
    json = "json"


@command
def kubernetes(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only print the objects (the default until --apply exists)")
    ] = False,
    output: Annotated[
        BundleFormat, typer.Option("--output", "-o", help="yaml or json (a v1 List)")
    ] = BundleFormat.yaml,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", help="Write the kustomize tree (like deploy/kubernetes) here"),
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="System namespace")
    ] = "pilothouse-system",
) -> None:
    """Print the Kubernetes install bundle; pipe it to `kubectl apply -f -`."""
    del dry_run  # printing is all this command does today; the flag keeps scripts valid when --apply lands
    config = KubernetesConfig(system_namespace=namespace)
    if output_dir is not None:
        if output_dir.exists() and not output_dir.is_dir():
            fail(f"--output-dir: {output_dir} is not a directory")
        for path in write_tree(output_dir, config):
            err.print(f"wrote {path}", markup=False, highlight=False)
        return
    objects = install_objects(config)
    if output is BundleFormat.json:
        text = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2) + "\n"
    else:
        text = dump_all(objects)
    out.print(text, end="", markup=False, emoji=False, highlight=False)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Print what installs Pilothouse on a platform.", no_args_is_help=True)
    group.command()(kubernetes)
    app.add_typer(group, name="install")
