"""The cost API and the budget admission check.

``GET /apis/pilothouse.dev/v1alpha1/cost?window=7d&by=team&team=T&idle=separate|share&exact=false``
returns one view of what the metering loop recorded, priced with the control plane's price book: the
rows, a total row, and the window actually charged (it ends at now). Money is in decimal strings,
cents unless ``exact=true`` (nano-dollars).

``budget_admission`` runs before every resource write (a router dependency, so the CRUD handlers stay
unchanged): a ModelEndpoint created in the namespace of a team whose budget refuses endpoints, or an
update raising its replica bounds, is refused with a 422 naming ``metadata.namespace`` or
``spec.autoscaling`` and the budget's reason (``admission.budget_problems``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from pilothouse.api.errors import FieldProblem, ManifestError
from pilothouse.api.meta import API_VERSION
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.team import Team
from pilothouse.controllers.budgets import BudgetLedger
from pilothouse.controllers.costing import CostReports
from pilothouse.cost import VIEWS, IdleMode, to_records
from pilothouse.server.admission import budget_problems
from pilothouse.server.services import ControlPlaneServices
from pilothouse.store.protocol import NotFound, Store

router = APIRouter(prefix=f"/apis/{API_VERSION}", tags=["cost"])
IDLE_MODES: tuple[IdleMode, ...] = ("separate", "share")


@dataclass(frozen=True)
class CostServices:
    """What the cost API and budget admission need: priced reports and the budget ledger."""

    reports: CostReports
    ledger: BudgetLedger
    clock: Callable[[], datetime]


def cost_services(request: Request) -> CostServices:
    """The app's cost services; a 404 ``Status`` where this control plane does not meter cost."""
    cost: CostServices | None = getattr(request.app.state, "cost", None)
    if cost is None:
        raise NotFound("this control plane does not meter cost")
    return cost


@router.get("/cost")
def cost_report(
    request: Request,
    window: str = "7d",
    by: str = "team",
    team: str | None = None,
    idle: str = "separate",
    exact: bool = False,
) -> dict[str, Any]:
    cost = cost_services(request)
    problems = []
    if by not in VIEWS:
        problems.append(FieldProblem("by", f"unknown view {by!r} (known: {', '.join(VIEWS)})"))
    if idle not in IDLE_MODES:
        problems.append(FieldProblem("idle", f"must be separate or share, got {idle!r}"))
    if problems:
        raise ManifestError(problems)
    mode: IdleMode = "share" if idle == "share" else "separate"
    try:
        charged, rows = cost.reports.rows(window, by, team=team, idle=mode)
    except ValueError as exc:
        raise ManifestError([FieldProblem("window", str(exc))]) from None
    records = to_records(rows, exact=exact)
    return {
        "apiVersion": API_VERSION,
        "kind": "CostReport",
        "window": {"start": charged.start.isoformat(), "end": charged.end.isoformat()},
        "by": by,
        "columns": list(VIEWS[by].columns),
        "idle": mode,
        "team": team,
        "items": records[:-1],
        "total": records[-1],
    }


def _refusal(store: Store, cost: CostServices, namespace: str, body: Any) -> list[FieldProblem]:
    try:
        endpoint = ModelEndpoint.model_validate(body)
    except ValidationError:
        return []  # the handler's admission reports what is wrong with it
    try:
        team = store.get("Team", "", namespace)
    except NotFound:
        return []
    assert isinstance(team, Team)
    state = cost.ledger.state(team, cost.clock())
    if state is None or not state.refuses_endpoints:
        return []
    try:
        stored = store.get("ModelEndpoint", namespace, endpoint.metadata.name)
    except NotFound:
        stored = None
    assert stored is None or isinstance(stored, ModelEndpoint)
    return budget_problems(endpoint, stored, state.reason)


async def budget_admission(request: Request) -> None:
    """Refuse new endpoints and scale-ups in a namespace whose team's budget refuses them."""
    cost: CostServices | None = getattr(request.app.state, "cost", None)
    params = request.path_params
    if (
        cost is None
        or request.method not in ("POST", "PUT")
        or params.get("plural") != "modelendpoints"
        or not params.get("namespace")
        or request.url.path.endswith("/status")
    ):
        return
    try:
        body = await request.json()  # already read (and cached) for the handler's own Body parameter
    except ValueError:
        return
    svc: ControlPlaneServices = request.app.state.services
    problems = await run_in_threadpool(_refusal, svc.store, cost, str(params["namespace"]), body)
    if problems:
        raise ManifestError(problems)
