"""``rollout status|history|undo|pause|resume``: kubectl's rollout verbs for model endpoints.

``undo`` restores an earlier revision's *template* (model, resources, env, batching) into the spec —
scaling and rollout settings stay as they are — which the controller then rolls out like any change;
the template's revision number comes back, as with a Deployment.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from pilothouse.api.meta import get_condition
from pilothouse.api.modelendpoint import ModelEndpoint, ModelEndpointSpec
from pilothouse.api.registry import resolve_kind
from pilothouse.cli.context import command, err, fail, out, state
from pilothouse.cli.output import age
from pilothouse.client import PilothouseClient

app = typer.Typer(help="Manage the rollout of a model endpoint's revisions.", no_args_is_help=True)
Namespace = Annotated[str, typer.Option("--namespace", "-n")]
ME = resolve_kind("modelendpoint")
TEMPLATE_FIELDS = ("model", "resources", "env", "batching")


def _endpoint(client: PilothouseClient, namespace: str, name: str) -> ModelEndpoint:
    obj = client.get(ME, namespace, name)
    assert isinstance(obj, ModelEndpoint)
    return obj


def _split(obj: ModelEndpoint) -> str:
    return ", ".join(
        f"revision {t.revision}: {t.percent}% ({t.readyReplicas} ready)" for t in obj.status.traffic
    )


@command
def status(
    ctx: typer.Context,
    name: str,
    namespace: Namespace = "default",
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 300.0,
    watch: Annotated[bool, typer.Option("--watch/--no-watch", "-w")] = True,
) -> None:
    """Wait for the rollout to finish; exit 1 if it is rolled back."""
    deadline = time.monotonic() + timeout
    last = ""
    with state(ctx).client() as client:
        while True:
            obj = _endpoint(client, namespace, name)
            phase = obj.status.rolloutPhase
            current = obj.status.observedGeneration == obj.metadata.generation
            line = f"{phase or 'Pending'}: {_split(obj) or 'no traffic yet'}"
            if line != last:
                out.print(line, markup=False)
                last = line
            if current and phase == "Completed":
                out.print(
                    f'modelendpoint "{name}" successfully rolled out (revision {obj.status.stableRevision})'
                )
                return
            if current and phase in ("RolledBack", "Degraded"):
                ready = get_condition(obj.status.conditions, "Ready")
                fail(
                    f"rollout of revision {obj.status.latestRevision} failed: {ready.message if ready else phase}"
                )
            if not watch:
                return
            if time.monotonic() > deadline:
                fail(f"timed out after {timeout:.0f} s waiting for the rollout of {name}")
            time.sleep(0.5)


@command
def history(ctx: typer.Context, name: str, namespace: Namespace = "default") -> None:
    """The revisions of an endpoint: template, when, and which one serves."""
    with state(ctx).client() as client:
        obj = _endpoint(client, namespace, name)
        specs = {h["generation"]: h["spec"] for h in client.history(ME, namespace, name)}
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("REVISION", "GENERATION", "TEMPLATE", "CREATED", "MODEL", "STATUS"):
        table.add_column(column)
    for record in obj.status.revisions:
        model = (specs.get(record.generation) or {}).get("model", {})
        source = model.get("uri") or model.get("image") or " ".join(model.get("command") or [])
        marks = [
            m
            for m, rev in (("stable", obj.status.stableRevision), ("latest", obj.status.latestRevision))
            if rev == record.revision
        ]
        table.add_row(
            str(record.revision),
            str(record.generation),
            record.templateHash,
            age(record.created),
            source,
            ",".join(marks),
        )
    out.print(table)


@command
def undo(
    ctx: typer.Context,
    name: str,
    namespace: Namespace = "default",
    to_revision: Annotated[
        int | None, typer.Option("--to-revision", help="Default: the previous revision")
    ] = None,
) -> None:
    """Roll back to an earlier revision's template."""
    with state(ctx).client() as client:
        obj = _endpoint(client, namespace, name)
        records = {r.revision: r for r in obj.status.revisions}
        latest, stable = obj.status.latestRevision, obj.status.stableRevision
        target = to_revision
        if target is None:
            target = (
                stable
                if stable not in (None, latest)
                else max((r for r in records if r != latest), default=None)
            )
        if target is None or target not in records:
            known = ", ".join(str(r) for r in sorted(records)) or "none"
            fail(f"no revision {target} to roll back to (known revisions: {known})")
        specs = {h["generation"]: h["spec"] for h in client.history(ME, namespace, name)}
        old = specs.get(records[target].generation)
        if old is None:
            fail(f"the spec of revision {target} is no longer in the history")
        merged = obj.spec.model_dump(mode="json")
        for field in TEMPLATE_FIELDS:
            merged.pop(field, None)
            if field in old:
                merged[field] = old[field]
        obj.spec = ModelEndpointSpec.model_validate(merged)
        client.replace(obj)
    out.print(f'modelendpoint "{name}" rolled back to revision {target}')


def _set_paused(ctx: typer.Context, name: str, namespace: str, paused: bool) -> None:
    with state(ctx).client() as client:
        obj = _endpoint(client, namespace, name)
        if obj.spec.rollout.paused == paused:
            err.print(f'modelendpoint "{name}" is already {"paused" if paused else "resumed"}')
            return
        obj.spec.rollout.paused = paused
        client.replace(obj)
    out.print(f'modelendpoint "{name}" {"paused" if paused else "resumed"}')


@command
def pause(ctx: typer.Context, name: str, namespace: Namespace = "default") -> None:
    """Hold the rollout where it is (traffic split and replicas stay)."""
    _set_paused(ctx, name, namespace, True)


@command
def resume(ctx: typer.Context, name: str, namespace: Namespace = "default") -> None:
    """Continue a paused rollout."""
    _set_paused(ctx, name, namespace, False)


for verb in (status, history, undo, pause, resume):
    app.command()(verb)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="rollout")
