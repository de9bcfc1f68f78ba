"""Wires the control plane's observability: metrics registry and routes, top routes, tracing, log ids.

The composition root (``embedded/controlplane.py``) makes one :class:`Observability` from the
environment, hands ``metrics`` to the manager and ``gateway_tracing()`` to the gateway, and calls
``install`` on the FastAPI app; ``close`` on the way out flushes spans and shuts NVML down. Everything
is per instance — a private ``CollectorRegistry``, a private tracer provider — so two control planes in
one process (tests) do not share state, and importing this module does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, ProcessCollector

from pilothouse.controllers.metrics import ControlPlaneCollector, ControlPlaneMetrics
from pilothouse.observability.gpus import GpuTelemetry, NvmlTelemetry, open_nvml_telemetry
from pilothouse.observability.tracing import Tracing, TracingConfig, start_tracing
from pilothouse.runtime.protocol import JobRuntime, Runtime
from pilothouse.server.correlation import CorrelationMiddleware
from pilothouse.server.metrics import metrics_router
from pilothouse.server.top import TrafficWindows, top_router
from pilothouse.serving.gateway.tracing import GatewayTracing
from pilothouse.store.protocol import Store


@dataclass
class Observability:
    registry: CollectorRegistry
    metrics: ControlPlaneMetrics
    gpus: GpuTelemetry | None
    tracing: Tracing | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, gpus: GpuTelemetry | None = None) -> Observability:
        """Metrics always; GPU telemetry where NVML works (or ``gpus``); tracing when configured."""
        registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        return cls(
            registry=registry,
            metrics=ControlPlaneMetrics(registry),
            gpus=gpus if gpus is not None else open_nvml_telemetry(),
            tracing=start_tracing("pilothouse-gateway", TracingConfig.from_env(environ)),
        )

    def gateway_tracing(self) -> GatewayTracing | None:
        return GatewayTracing(self.tracing.requests) if self.tracing is not None else None

    def install(
        self,
        app: FastAPI,
        store: Store,
        runtime: Runtime,
        jobs: JobRuntime | None,
        traffic: TrafficWindows | None,
    ) -> None:
        """``GET /metrics``, the ``top`` routes and request ids on ``app``; the state collector on the registry."""
        self.registry.register(ControlPlaneCollector(store, runtime, jobs, self.gpus))
        app.include_router(metrics_router(self.registry))
        app.include_router(top_router(store, runtime, jobs, traffic, self.gpus))
        app.add_middleware(CorrelationMiddleware)

    def close(self) -> None:
        if self.tracing is not None:
            self.tracing.shutdown()
        if isinstance(self.gpus, NvmlTelemetry):
            self.gpus.close()
