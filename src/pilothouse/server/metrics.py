"""``GET /metrics``: the control plane's Prometheus exposition, from the registry it is given.

The route is sync on purpose: collecting reads the store and the runtime, which must not block the
event loop the API server shares with the embedded gateway (FastAPI runs sync routes in its pool).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest


def metrics_router(registry: CollectorRegistry) -> APIRouter:
    router = APIRouter(tags=["observability"])

    @router.get("/metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
