"""``apply``, ``get``, ``delete``: the kubectl verbs over declarative resources."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from pilothouse.api.meta import get_condition
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import KINDS, Resource, resolve_kind
from pilothouse.cli.context import command, err, fail, out, state
from pilothouse.cli.output import OutputFormat, as_documents, dump, table_for
from pilothouse.client.manifests import load_manifests
from pilothouse.client.waiting import wait_gone, wait_ready

Namespace = Annotated[str, typer.Option("--namespace", "-n", help="Team namespace")]


def _progress_line(obj: Resource) -> str:
    assert isinstance(obj, ModelEndpoint)
    ready = get_condition(obj.status.conditions, "Ready")
    if ready is None:
        return f"{obj.metadata.name}: waiting for the controller"
    return (
        f"{obj.metadata.name}: {obj.status.readyReplicas}/{obj.status.desiredReplicas} ready ({ready.reason})"
    )


@command
def apply(
    ctx: typer.Context,
    filename: Annotated[list[str], typer.Option("--filename", "-f", help="File, directory or - for stdin")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate on the server; store nothing")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every object is Ready")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait")] = 120.0,
) -> None:
    """Create or update resources from manifests (all are validated before any is stored)."""
    manifests = load_manifests(filename)
    with state(ctx).client() as client:
        for manifest in manifests:  # server-side dry run of all first: nothing half-applied
            client.apply(manifest.object, dry_run=True)
        if dry_run:
            for manifest in manifests:
                out.print(
                    f"{manifest.object.kind.lower()}.pilothouse.dev/{manifest.object.metadata.name} valid (dry run)"
                )
            return
        for manifest in manifests:
            result = client.apply(manifest.object)
            out.print(
                f"{result.object.kind.lower()}.pilothouse.dev/{result.object.metadata.name} {result.action}"
            )
        if not wait:
            return
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            for manifest in manifests:
                obj = manifest.object
                if not isinstance(obj, ModelEndpoint):
                    continue  # --wait waits for endpoints; jobs queue, teams apply at once
                task = progress.add_task(f"{obj.metadata.name}: applying")

                def show(current: Resource, task: TaskID = task) -> None:
                    progress.update(task, description=_progress_line(current))

                done = wait_ready(
                    client,
                    KINDS[obj.kind],
                    obj.metadata.namespace,
                    obj.metadata.name,
                    timeout=timeout,
                    on_progress=show,
                )
                progress.remove_task(task)
                assert isinstance(done, ModelEndpoint)
                out.print(
                    f"{done.kind.lower()}.pilothouse.dev/{done.metadata.name} ready at {done.status.url}"
                )


@command
def get(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="Kind: modelendpoints (me), ...")],
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Namespace = "default",
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.table,
    selector: Annotated[str | None, typer.Option("--selector", "-l", help="Label selector")] = None,
) -> None:
    """List resources, or show one."""
    info = resolve_kind(kind)
    with state(ctx).client() as client:
        if not info.namespaced:
            namespace, all_namespaces = "", True
        if name:
            objs = [client.get(info, namespace, name)]
        else:
            objs = client.list(info, None if all_namespaces else namespace, selector)
    if output in (OutputFormat.yaml, OutputFormat.json):
        docs = as_documents(objs)
        out.print(dump(docs[0] if name else docs, output), markup=False)
        return
    if not objs:
        err.print(
            f"No resources found{'' if all_namespaces or not info.namespaced else f' in {namespace} namespace'}."
        )
        return
    out.print(
        table_for(objs, all_namespaces=all_namespaces and info.namespaced, wide=output == OutputFormat.wide)
    )


@command
def delete(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Argument(help="Kind; omit with -f")] = None,
    names: Annotated[list[str] | None, typer.Argument()] = None,
    namespace: Namespace = "default",
    filename: Annotated[list[str] | None, typer.Option("--filename", "-f")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until every replica is gone")] = True,
    timeout: Annotated[float, typer.Option()] = 60.0,
) -> None:
    """Delete resources by name (or those in manifests); waits until their processes are gone."""
    targets: list[tuple[str, str, str]] = []
    if filename:
        targets += [
            (m.object.kind, m.object.metadata.namespace, m.object.metadata.name)
            for m in load_manifests(filename)
        ]
    if kind is not None:
        if not names:
            fail("give at least one NAME after the kind")
        info = resolve_kind(kind)
        targets += [(info.kind, namespace if info.namespaced else "", n) for n in names]
    if not targets:
        fail("give a KIND and NAME, or -f FILE")
    with state(ctx).client() as client:
        for kind_name, ns, name in targets:
            gone = client.delete(KINDS[kind_name], ns, name)
            if wait and gone.metadata.uid:
                wait_gone(client, gone.metadata.uid, timeout=timeout)
            out.print(f"{kind_name.lower()}.pilothouse.dev/{name} deleted")


def register(app: typer.Typer) -> None:
    app.command()(apply)
    app.command()(get)
    app.command()(delete)
