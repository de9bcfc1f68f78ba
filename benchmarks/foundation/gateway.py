"""Throughput and latency of the model server alone, the bare-Starlette floor, and through the gateway.

The gateway is on every request's path (``status.url``), so its cost has to stay visible: this drives
the same iris infer request at each concurrency level against four targets, with the load generator
and helpers of ``benchmarks/modelserver/bench.py`` (``hey`` when installed):

- ``floor``: bench.py's bare Starlette + orjson app, the lower bound for a Python server;
- ``modelserver``: the Pilothouse model server started alone by bench.py;
- ``replica``: the replica ``pilothouse up`` started for the endpoint, hit directly on its own port;
- ``gateway``: the same replica through the gateway (``status.url``).

``gateway - replica`` is the gateway's added latency (same process behind both). Servers are
alternated within each round so drift on a shared machine hits all alike; every level is bounded by
a request count and a wall-clock timeout; medians over rounds are reported.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from modelserver.bench import BODY, ServerStats, drive, running

TARGETS = ("floor", "modelserver", "replica", "gateway")


@dataclass
class Level:
    target: str
    concurrency: int
    requests: int
    ok: int
    rps: float
    p50_ms: float
    p99_ms: float


def run(
    model: Path,
    replica_url: str,
    gateway_url: str,
    work_dir: Path,
    *,
    generator: str,
    levels: list[int],
    requests: int,
    rounds: int,
    level_timeout: float = 60.0,
) -> dict[str, Any]:
    """Drive every target at every level; ``*_url`` are base URLs of the endpoint's replica/gateway."""
    body_file = work_dir / "body.json"
    body_file.write_bytes(orjson.dumps(BODY))
    infer = "/v2/models/iris/infer"
    results: list[Level] = []
    with (
        running("floor", model, ServerStats("floor")) as floor,
        running("pilothouse", model, ServerStats("pilothouse")) as alone,
    ):
        urls = {
            "floor": floor + infer,
            "modelserver": alone + infer,
            "replica": replica_url + infer,
            "gateway": gateway_url + infer,
        }
        for url in urls.values():  # warm-up: lazy imports, allocations, gateway connection pool
            drive(generator, url, body_file, 300, 4, level_timeout)
        for c in levels:
            runs: dict[str, list[tuple[int, int, float, float, float]]] = {t: [] for t in urls}
            for _ in range(rounds):
                for target, url in urls.items():
                    runs[target].append(drive(generator, url, body_file, requests, c, level_timeout))
            for target, rs in runs.items():
                rps, p50, p99 = (statistics.median(r[i] for r in rs) for i in (2, 3, 4))
                n, ok = sum(r[0] for r in rs), sum(r[1] for r in rs)
                results.append(Level(target, c, n, ok, rps, p50, p99))
    return {"levels": [asdict(r) for r in results], "overhead": overhead(results)}


def overhead(results: list[Level]) -> list[dict[str, float]]:
    """Per concurrency: gateway minus direct replica (latency), ratios to the floor (throughput)."""
    by = {(r.target, r.concurrency): r for r in results}
    out = []
    for c in sorted({r.concurrency for r in results}):
        gw, rep = by[("gateway", c)], by[("replica", c)]
        alone, floor = by[("modelserver", c)], by[("floor", c)]
        out.append(
            {
                "concurrency": c,
                "gateway_p50_added_ms": gw.p50_ms - rep.p50_ms,
                "gateway_p99_added_ms": gw.p99_ms - rep.p99_ms,
                "gateway_rps_ratio": gw.rps / rep.rps,
                "modelserver_floor_rps_ratio": alone.rps / floor.rps,
                "modelserver_floor_p50_ratio": alone.p50_ms / floor.p50_ms,
            }
        )
    return out
