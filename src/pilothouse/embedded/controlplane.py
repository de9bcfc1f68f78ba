"""``EmbeddedControlPlane``: start everything for ``pilothouse up``, stop everything on Ctrl-C.

Start order: lock the data dir, bind both ports, open the store, start the runtime (which adopts
replicas left by a control plane that was killed), start the controllers, then serve. Stop order is
the reverse, so no replica outlives the control plane that started it unless it was killed with SIGKILL
— in which case the next ``up`` adopts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Generator

import uvicorn
import uvloop

from pilothouse import __version__
from pilothouse.controllers.autoscaler import Autoscaler
from pilothouse.controllers.budgets import BudgetLedger
from pilothouse.controllers.costing import CostReports
from pilothouse.controllers.job import JobReconciler, TeamReconciler
from pilothouse.controllers.manager import Manager, ObjectKey
from pilothouse.controllers.metering import MeteringLoop, utcnow
from pilothouse.controllers.modelendpoint import ModelEndpointReconciler
from pilothouse.controllers.queue import QueuePass
from pilothouse.controllers.usage import PsutilSampler
from pilothouse.embedded.guards import DataDirLock, bind_listener
from pilothouse.embedded.prices import open_prices
from pilothouse.observability.logs import log_format_from_env
from pilothouse.runtime.local import LocalRuntime
from pilothouse.scheduling.policies import make_policy
from pilothouse.server.app import create_app
from pilothouse.server.cost import CostServices
from pilothouse.server.observability import Observability
from pilothouse.server.services import ControlPlaneServices
from pilothouse.serving.gateway.proxy import Gateway
from pilothouse.serving.gateway.routes import RouteTable
from pilothouse.settings import Settings
from pilothouse.store.sql import SqlMeterStore, SqlStore

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the control plane (two servers share a loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class EmbeddedControlPlane:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = DataDirLock(settings.lock_path)
        self._sockets: list[socket.socket] = []
        self._servers: list[_Server] = []
        self.api_url = f"http://{settings.host}:{settings.port}"
        self.gateway_url = f"http://{settings.host}:{settings.gateway_port}"

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        api = bind_listener(self.settings.host, self.settings.port, "--port")
        self._sockets.append(api)
        gateway = bind_listener(self.settings.host, self.settings.gateway_port, "--gateway-port")
        self._sockets.append(gateway)
        # Ephemeral ports (0) resolve here, so URLs are right even when the caller asked for "any".
        self.api_url = f"http://{self.settings.host}:{api.getsockname()[1]}"
        self.gateway_url = f"http://{self.settings.host}:{gateway.getsockname()[1]}"
        return api, gateway

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM; then stop every replica and release the data dir."""
        self._lock.acquire()
        try:
            api_sock, gateway_sock = self._bind()
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            prices = open_prices(self.settings)  # cost: fail before starting anything
            store = SqlStore(self.settings.database_path)
            meters = SqlMeterStore(self.settings.database_path)
            try:
                runtime = LocalRuntime(self.settings.runtime_dir, accelerators=self.settings.accelerators)
                try:
                    self._serve(store, runtime, api_sock, gateway_sock, CostReports(meters, prices, utcnow))
                finally:
                    log.info("stopping replicas")
                    runtime.close(stop_workloads=True)
            finally:
                meters.close()
                store.close()
        finally:
            for sock in self._sockets:
                sock.close()
            self._lock.release()

    def _serve(
        self,
        store: SqlStore,
        runtime: LocalRuntime,
        api_sock: socket.socket,
        gateway_sock: socket.socket,
        reports: CostReports,
    ) -> None:
        routes = RouteTable(clock=time.time)  # samples on the controllers' wall clock
        endpoints = ModelEndpointReconciler(
            store, runtime, routes, self.gateway_url, traffic=routes, decider=Autoscaler(routes)
        )
        ledger = BudgetLedger()  # cost: month-to-date spend, priced by the metering loop
        observability = Observability.from_env(os.environ)  # observability: metrics, top, tracing
        queue = QueuePass(
            store,
            runtime,
            runtime,
            make_policy(self.settings.scheduling_policy),
            budgets=ledger,
            on_idle=observability.metrics.idle_while_waiting_seconds,
        )
        manager = Manager(
            store, [], resync_seconds=self.settings.resync_seconds, metrics=observability.metrics
        )
        jobs = JobReconciler(store, runtime, queue, manager.enqueue)
        for reconciler in (endpoints, jobs, TeamReconciler(manager.enqueue)):
            manager.register(reconciler)

        def on_runtime_change(owner_uid: str) -> None:
            key: ObjectKey | None = endpoints.key_for_uid(owner_uid) or jobs.key_for_uid(owner_uid)
            if key is not None:
                manager.enqueue(key)

        runtime.on_change(on_runtime_change)

        def on_demand(namespace: str, name: str) -> None:  # a request is held: scale from zero now
            manager.enqueue(ObjectKey("ModelEndpoint", namespace, name))

        routes.on_demand(on_demand)
        services = ControlPlaneServices(
            store=store, runtime=runtime, gateway_url=self.gateway_url, version=__version__, jobs=runtime
        )
        app = create_app(services, CostServices(reports, ledger, utcnow))
        sampler = PsutilSampler.with_nvml()
        metering = MeteringLoop(
            store,
            runtime,
            reports.meters,
            reports,
            ledger,
            jobs=runtime,
            usage=sampler,
            traffic=routes,
            period=self.settings.metering_seconds,
            budget_period=self.settings.budget_seconds,
        )
        reports.prices.on_change(lambda _book: metering.reprice())  # cost: new prices, budgets now
        # -- observability: /metrics, /apis/top.pilothouse.dev, request ids, gateway spans
        observability.install(app, store, runtime, runtime, routes)
        gateway = Gateway(routes, tracing=observability.gateway_tracing())
        log_config = None if log_format_from_env(os.environ) == "json" else uvicorn.config.LOGGING_CONFIG
        # -- end observability
        self._servers = [
            _Server(
                uvicorn.Config(
                    app, log_level="warning", access_log=False, lifespan="off", log_config=log_config
                )
            ),
            _Server(
                uvicorn.Config(
                    gateway,
                    log_level="warning",
                    access_log=False,
                    http="httptools",
                    loop="uvloop",
                    log_config=log_config,
                )
            ),
        ]
        manager.start()
        metering.start()
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self._serve_forever([api_sock], [gateway_sock]))
        finally:
            metering.stop(close_open=True)  # the runtime stops every workload right after this
            sampler.close()
            manager.stop()
            observability.close()  # observability: flush spans, release NVML

    async def _serve_forever(self, api: list[socket.socket], gateway: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        log.info("control plane on %s, gateway on %s", self.api_url, self.gateway_url)
        await asyncio.gather(self._servers[0].serve(api), self._servers[1].serve(gateway))

    def request_stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
