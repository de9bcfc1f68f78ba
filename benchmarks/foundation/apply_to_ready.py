"""apply-to-Ready: how long a user waits between ``apply`` of a ModelEndpoint and a working URL.

This is the platform's core promise (our issue's target: under 3 s for the iris endpoint on a laptop),
so it is measured end to end on a real ``pilothouse up``: apply through the typed client (no CLI
start-up), poll the Ready condition every 20 ms, then POST to ``status.url`` until the first 200. Each
round then deletes the endpoint and waits until its replicas are gone, so every round is a cold start
of a fresh model-server process. One un-counted warm-up round comes first (page cache, lazy imports in
the control plane) and is reported on its own.

The breakdown is reconstructed from cheap, already-available signals: the replica's process start
time (/proc/<pid>/stat), and the model server's own log line "loaded sklearn model ... in X s" (timestamped),
so no instrumentation is added to the platform for it.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from common import ENDPOINT_INFO, INFER_BODY, endpoint_url, percentile
from pilothouse.api.registry import Resource
from pilothouse.client import ApiError, PilothouseClient
from pilothouse.client.waiting import wait_gone, wait_ready

POLL_S = 0.02
LOADED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*loaded \S+ model .* in ([\d.]+)s")


@dataclass
class Round:
    ready_s: float
    """apply -> Ready condition True (as seen by a 20 ms poll)."""
    first_infer_s: float
    """apply -> first 200 from POST {status.url}/v2/models/iris/infer."""
    apply_call_s: float
    """the apply request itself (create in the store)."""
    spawn_s: float | None
    """apply -> model-server process created (controller reaction + fork/exec)."""
    boot_s: float | None
    """process created -> model load starts (interpreter start + pilothouse imports)."""
    load_s: float | None
    """the model server's own "loaded ... in X s" (includes importing scikit-learn)."""
    serve_s: float | None
    """model loaded -> Ready seen (uvicorn start, readiness probe, status write, our poll)."""
    delete_s: float
    """delete -> no replica left and the object gone."""


def _breakdown(
    client: PilothouseClient, name: str, wall0: float, ready_wall: float
) -> tuple[float | None, ...]:
    replicas = client.replicas(ENDPOINT_INFO, "default", name)
    created = _started_at(int(replicas[0]["pid"])) if replicas and replicas[0].get("pid") else None
    loaded_at = load_s = None
    for line in client.logs(ENDPOINT_INFO, "default", name, tail=50):
        match = LOADED.match(line)
        if match:
            loaded_at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            load_s = float(match.group(2))
    spawn = created - wall0 if created is not None else None
    boot = loaded_at - load_s - created if None not in (loaded_at, load_s, created) else None  # type: ignore[operator]
    serve = ready_wall - loaded_at if loaded_at is not None else None
    return spawn, boot, load_s, serve


def _started_at(pid: int) -> float | None:
    """Wall-clock start of ``pid`` to one clock tick (psutil's create_time rounds boot time to 1 s)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime in ticks since boot
    return time.time() - age


def _first_inference(http: httpx.Client, url: str, timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if http.post(f"{url}/v2/models/iris/infer", json=INFER_BODY).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.002)
    raise RuntimeError(f"no successful inference through {url} within {timeout} s")


def _wait_deleted(client: PilothouseClient, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.get(ENDPOINT_INFO, "default", name)
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
        time.sleep(POLL_S)
    raise RuntimeError(f"{name} still present {timeout} s after delete")


def one_round(client: PilothouseClient, http: httpx.Client, endpoint: Resource) -> Round:
    name = endpoint.metadata.name
    wall0, t0 = time.time(), time.perf_counter()
    applied = client.apply(endpoint).object
    t_apply = time.perf_counter()
    ready = wait_ready(client, ENDPOINT_INFO, "default", name, timeout=60.0, interval=POLL_S)
    t_ready, ready_wall = time.perf_counter(), time.time()
    _first_inference(http, endpoint_url(ready))
    t_infer = time.perf_counter()
    spawn, boot, load, serve = _breakdown(client, name, wall0, ready_wall)

    t_del = time.perf_counter()
    client.delete(ENDPOINT_INFO, "default", name)
    wait_gone(client, applied.metadata.uid or "", timeout=30.0, interval=POLL_S)
    _wait_deleted(client, name)
    return Round(
        ready_s=t_ready - t0,
        first_infer_s=t_infer - t0,
        apply_call_s=t_apply - t0,
        spawn_s=spawn,
        boot_s=boot,
        load_s=load,
        serve_s=serve,
        delete_s=time.perf_counter() - t_del,
    )


def run(client: PilothouseClient, endpoint: Resource, rounds: int) -> dict[str, Any]:
    """One warm-up round, then ``rounds`` measured ones; returns raw rounds and summaries."""
    with httpx.Client(timeout=10.0) as http:
        warmup = one_round(client, http, endpoint)
        measured = [one_round(client, http, endpoint) for _ in range(rounds)]
    return {"warmup": asdict(warmup), "rounds": [asdict(r) for r in measured], "summary": summarize(measured)}


def summarize(rounds: list[Round]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key in asdict(rounds[0]):
        values = [v for r in rounds if (v := getattr(r, key)) is not None]
        if values:
            out[key] = {
                "median": statistics.median(values),
                "p90": percentile(values, 90),
                "min": min(values),
                "max": max(values),
            }
    return out
