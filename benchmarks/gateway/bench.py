"""Gateway v2: added latency and throughput of each way to run the gateway, against the replica direct.

Run: ``.venv/bin/python benchmarks/gateway/bench.py [--requests 3000] [--rounds 3] [--json out.json]``

One real iris model server (``benchmarks/modelserver/bench.py``'s ``running``) is the replica behind
every candidate, all driven with the same ``hey`` command (``drive``) at each concurrency level:

- ``direct``: the model server itself — the baseline;
- ``native``: ``python -m pilothouse.serving.gateway`` — its own process, the httptools protocol server
  (server.py) and the httptools upstream pool (upstream.py); routes pushed with ``--routes``;
- ``uvicorn``: the same process and Gateway, but as an ASGI app on uvicorn + httptools + uvloop — the
  server the embedded control plane uses;
- ``embedded`` (``--embedded``): the gateway inside ``pilothouse up`` (in-process with the API server
  and the controllers, on the GIL they share) forwarding to the replica ``up`` started; its overhead is
  taken against that replica (``embedded-replica``), hit directly.

Targets are alternated within each round so drift on a shared machine hits all alike; medians over
rounds are reported. The load generator shares the 2 cores with the gateway and the replica, so
numbers are floors, and the gateway competes with the model server for CPU at high concurrency.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import (  # noqa: E402
    ENDPOINT_INFO,
    client_for,
    endpoint_url,
    iris_endpoint,
    pick_generator,
    pilothouse_up,
    train_iris,
)
from modelserver.bench import BODY, ServerStats, drive, free_port, running  # noqa: E402
from pilothouse.client.waiting import wait_ready  # noqa: E402

INFER = "/v2/models/iris/infer"


@contextlib.contextmanager
def gateway_process(server: str, replica: str, work: Path) -> Iterator[str]:
    """``python -m pilothouse.serving.gateway`` routing ``/bench/iris`` to ``replica``; yields its base URL."""
    routes = work / f"routes-{server}.json"
    route = {"revisions": [{"revision": 1, "weight": 100, "replicas": [{"url": replica}]}]}
    routes.write_bytes(orjson.dumps({"routes": [{"namespace": "bench", "name": "iris", "route": route}]}))
    port = free_port()
    cmd = [sys.executable, "-m", "pilothouse.serving.gateway", "--port", str(port), "--routes", str(routes)]
    proc = subprocess.Popen([*cmd, "--server", server])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"{base}/bench/iris"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def embedded(work: Path, model: Path) -> Iterator[tuple[str, str]]:
    """``pilothouse up`` with the iris endpoint Ready: yields (gateway endpoint URL, replica URL)."""
    (work / "up").mkdir(exist_ok=True)
    with pilothouse_up(work / "up") as plat, client_for(plat) as client:
        endpoint = iris_endpoint(model, "iris")
        client.apply(endpoint)
        ready = wait_ready(client, ENDPOINT_INFO, "default", "iris", timeout=30, interval=0.02)
        replicas = client.replicas(ENDPOINT_INFO, "default", "iris")
        yield endpoint_url(ready), str(replicas[0]["url"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    generator = pick_generator(args.generator)
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="gwbench-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        body_file = work / "body.json"
        body_file.write_bytes(orjson.dumps(BODY))
        model = train_iris(work)
        direct = stack.enter_context(running("pilothouse", model, ServerStats("direct")))
        targets = {"direct": direct + INFER}
        baseline = {"direct": "direct"}
        for server in args.servers.split(","):
            targets[server] = stack.enter_context(gateway_process(server, direct, work)) + INFER
            baseline[server] = "direct"
        if args.embedded:
            try:
                gateway_url, replica_url = stack.enter_context(embedded(work, model))
            except Exception as exc:  # the control plane is someone else's moving target
                print(f"embedded candidate skipped: {type(exc).__name__}: {exc}", flush=True)
            else:
                targets["embedded-replica"] = replica_url + INFER
                targets["embedded"] = gateway_url + INFER
                baseline["embedded-replica"] = "embedded-replica"
                baseline["embedded"] = "embedded-replica"
        for url in targets.values():  # warm-up: imports, allocations, connection pools
            drive(generator, url, body_file, 300, 4, args.level_timeout)
        rows = []
        for c in levels:
            runs: dict[str, list[tuple[int, int, float, float, float]]] = {t: [] for t in targets}
            for _ in range(args.rounds):
                for target, url in targets.items():
                    runs[target].append(
                        drive(generator, url, body_file, args.requests, c, args.level_timeout)
                    )
            for target, rs in runs.items():
                rps, p50, p99 = (statistics.median(r[i] for r in rs) for i in (2, 3, 4))
                n, ok = sum(r[0] for r in rs), sum(r[1] for r in rs)
                rows.append(
                    {"target": target, "c": c, "n": n, "ok": ok, "rps": rps, "p50_ms": p50, "p99_ms": p99}
                )
        by = {(r["target"], r["c"]): r for r in rows}
        for r in rows:
            base = by[(baseline[r["target"]], r["c"])]
            r["p50_added_ms"] = r["p50_ms"] - base["p50_ms"]
            r["rps_vs_direct"] = r["rps"] / base["rps"]
        return {"generator": generator, "load": os.getloadavg(), "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000, help="requests per target, level and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--servers", default="native,uvicorn", help="own-process candidates")
    ap.add_argument("--embedded", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--generator", choices=["auto", "hey", "python"], default="auto")
    ap.add_argument("--level-timeout", type=float, default=60.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    result = run(args)
    print(f"load average after: {result['load']}  (generator: {result['generator']})")
    print(
        f"{'target':<18}{'c':>4}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'p50 added':>11}{'rps/direct':>12}{'ok':>12}"
    )
    for r in result["rows"]:
        print(
            f"{r['target']:<18}{r['c']:>4}{r['rps']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['p50_added_ms']:>+11.2f}{r['rps_vs_direct']:>12.2f}{r['ok']:>6}/{r['n']}"
        )
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
