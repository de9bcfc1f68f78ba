"""A control-plane API with the cost services, in this process, on a real port, for cost and CLI tests.

Real SQL store and meter store, a fake runtime, a frozen clock and the price book saved in a temp
data dir exactly where ``pilothouse up`` saves it, so a test can read the file, or open the prices the
way a restarted ``up`` does. Metering records are written by hand, so every amount is known exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fakes import FakeRuntime
from pilothouse.client import PilothouseClient
from pilothouse.controllers.budgets import BudgetLedger
from pilothouse.controllers.costing import CostReports
from pilothouse.embedded.prices import open_prices
from pilothouse.server.app import create_app
from pilothouse.server.cost import CostServices
from pilothouse.server.services import ControlPlaneServices
from pilothouse.settings import Settings
from pilothouse.store.metering import IntervalRecord
from pilothouse.store.sql import SqlMeterStore, SqlStore
from support import serve_app

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
NOW = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)
"""The frozen clock: two hours after ``T0``."""
FIRST_HOUR = "2025-03-10T12:00:00Z,2025-03-10T13:00:00Z"


@dataclass
class CostPlane:
    settings: Settings
    store: SqlStore
    meters: SqlMeterStore
    reports: CostReports
    url: str

    def client(self) -> PilothouseClient:
        return PilothouseClient(self.url, timeout=10)

    def run_endpoint_for_an_hour(self, namespace: str = "nlp", name: str = "chat") -> None:
        """One replica asking 2 cores and 1 GiB from ``T0`` to ``T0 + 1h``, with no usage samples, so
        it is charged its requests: cpu 2 core-hours, memory 1 GiB-hour."""
        self.meters.open_interval(
            IntervalRecord(
                id=f"{name}-uid/{name}-1-a",
                kind="ModelEndpoint",
                namespace=namespace,
                name=name,
                pool="local",
                requested={"cpu": "2", "memory": str(2**30)},
                start=T0,
                last_seen=T0,
                revision=1,
                owner_uid=f"{name}-uid",
            )
        )
        self.meters.close_interval(f"{name}-uid/{name}-1-a", T0.replace(hour=13))


@contextlib.contextmanager
def cost_plane(data_dir: Path) -> Iterator[CostPlane]:
    settings = Settings(data_dir=data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SqlStore(settings.database_path)
    meters = SqlMeterStore(settings.database_path)
    try:
        reports = CostReports(meters, open_prices(settings), lambda: NOW)
        services = ControlPlaneServices(store, FakeRuntime(), "http://127.0.0.1:1", "test")
        app = create_app(services, CostServices(reports, BudgetLedger(), lambda: NOW))
        with serve_app(app) as url:
            yield CostPlane(settings, store, meters, reports, url)
    finally:
        meters.close()
        store.close()
