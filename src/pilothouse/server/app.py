"""Builds the control plane's FastAPI app from its services; no globals, no import-time side effects."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse

from pilothouse.api.errors import ManifestError
from pilothouse.server import cost, events, pricebook, resources, workloads
from pilothouse.server.services import ControlPlaneServices
from pilothouse.server.status import handle_manifest_error, handle_store_error
from pilothouse.store.protocol import StoreError


def create_app(svc: ControlPlaneServices, costs: cost.CostServices | None = None) -> FastAPI:
    app = FastAPI(
        title="Pilothouse control plane",
        version=svc.version,
        description="Kubernetes-style API for ModelEndpoints (and, later, Jobs and Teams).",
    )
    app.state.services = svc
    app.state.cost = costs  # cost: the cost API and budget admission (None: not metered)
    app.add_exception_handler(StoreError, handle_store_error)
    app.add_exception_handler(ManifestError, handle_manifest_error)
    # Fixed paths first, so "events" and "replicas" are not taken for a kind's plural.
    app.include_router(events.router)
    app.include_router(workloads.router)
    app.include_router(cost.router)  # cost: before resources, so "cost" is not taken for a plural
    app.include_router(pricebook.router)  # cost: GET/PUT .../pricebook, also before resources
    app.include_router(resources.router, dependencies=[Depends(cost.budget_admission)])

    @app.get("/healthz", response_class=PlainTextResponse, tags=["health"])
    def healthz() -> str:
        return "ok"

    @app.get("/readyz", response_class=PlainTextResponse, tags=["health"])
    def readyz() -> str:
        svc.store.current_version()  # the store answers: we can serve
        return "ok"

    @app.get("/version", tags=["health"])
    def version() -> dict[str, str]:
        return {"version": svc.version, "runtime": svc.runtime.name, "gatewayURL": svc.gateway_url}

    return app
