"""``make bench``: the foundation's benchmarks in one command, printed as tables.

Run: ``.venv/bin/python benchmarks/run.py [--quick] [--json FILE]``

Starts a real ``pilothouse up`` (ephemeral ports, temp data dir), trains the iris model, and measures
(a) apply-to-Ready and apply-to-first-inference of the iris ModelEndpoint (benchmarks/foundation/
apply_to_ready.py), (b) requests/s, p50 and p99 at several concurrencies for the bare-Starlette floor,
the model server alone, the endpoint's replica directly and through the gateway (benchmarks/foundation/
gateway.py, on top of benchmarks/modelserver/bench.py). The machine and load generator are recorded;
the load generator shares the machine's cores with the servers. Every process started is stopped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from common import (
    ENDPOINT_INFO,
    client_for,
    endpoint_url,
    iris_endpoint,
    machine_info,
    pick_generator,
    pilothouse_up,
    train_iris,
)
from foundation import apply_to_ready, gateway
from pilothouse.client.waiting import wait_gone, wait_ready

console = Console(highlight=False)
TARGET_READY_S = 3.0


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 apply rounds, 1000 requests x 1 round per level")
    ap.add_argument("--json", type=Path, help="also write every raw number here")
    ap.add_argument("--rounds", type=int, help="apply-to-Ready rounds (default 10, 3 with --quick)")
    ap.add_argument("--requests", type=int, help="requests per level and round (default 3000 / 1000)")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--generator", choices=["auto", "hey", "python"], default="auto")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    generator = pick_generator(args.generator)
    apply_rounds = args.rounds or (3 if args.quick else 10)
    requests = args.requests or (1000 if args.quick else 3000)
    load_rounds = 1 if args.quick else 3
    levels = [int(c) for c in args.concurrency.split(",")]
    report: dict[str, Any] = {"machine": machine_info(generator), "quick": args.quick}
    print_machine(report["machine"])

    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as tmp:
        work = Path(tmp)
        model = train_iris(work)
        endpoint = iris_endpoint(model)
        with pilothouse_up(work) as plat, client_for(plat) as client:
            console.print(f"[dim]pilothouse up: api {plat.api_url}, gateway {plat.gateway_url}[/dim]")
            console.print(f"[bold]apply-to-Ready[/bold]: 1 warm-up + {apply_rounds} rounds ...")
            report["apply_to_ready"] = apply_to_ready.run(client, endpoint, apply_rounds)
            print_apply(report["apply_to_ready"])

            console.print(
                f"[bold]throughput[/bold]: {requests} requests x {load_rounds} round(s) per level, "
                f"concurrency {levels}, generator {generator} ..."
            )
            applied = client.apply(endpoint).object
            ready = wait_ready(client, ENDPOINT_INFO, "default", endpoint.metadata.name, interval=0.02)
            try:
                replicas = client.replicas(ENDPOINT_INFO, "default", endpoint.metadata.name)
                assert len(replicas) == 1, replicas
                report["throughput"] = gateway.run(
                    model,
                    str(replicas[0]["url"]),
                    endpoint_url(ready),
                    work,
                    generator=generator,
                    levels=levels,
                    requests=requests,
                    rounds=load_rounds,
                )
            finally:
                client.delete(ENDPOINT_INFO, "default", endpoint.metadata.name)
                wait_gone(client, applied.metadata.uid or "", timeout=30.0)
            print_throughput(report["throughput"], generator, load_rounds)

    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        console.print(f"[dim]raw numbers written to {args.json}[/dim]")
    levels_ok = all(r["ok"] == r["requests"] for r in report["throughput"]["levels"])
    return 0 if levels_ok else 1


def print_machine(m: dict[str, Any]) -> None:
    table = Table(title="Machine", show_header=False)
    for key, value in m.items():
        table.add_row(key, str(value))
    console.print(table)
    console.print(
        f"[dim]the load generator ({m['generator']}) runs on the same {m['cores']} cores as the servers[/dim]"
    )


def print_apply(result: dict[str, Any]) -> None:
    summary = result["summary"]
    n = len(result["rounds"])
    table = Table(title=f"apply -> Ready / first inference, iris ModelEndpoint ({n} rounds, seconds)")
    for col in ("", "median", "p90", "min", "max", "warm-up round"):
        table.add_column(col, justify="right" if col else "left")
    rows = [
        ("apply -> Ready", "ready_s"),
        ("apply -> first inference (via gateway)", "first_infer_s"),
        ("  apply request", "apply_call_s"),
        ("  apply -> process started", "spawn_s"),
        ("  process start -> model load begins", "boot_s"),
        ("  model load (server's own log)", "load_s"),
        ("  loaded -> Ready seen", "serve_s"),
        ("delete -> replicas gone", "delete_s"),
    ]
    for label, key in rows:
        if key not in summary:
            continue
        s, warm = summary[key], result["warmup"].get(key)
        warm_text = f"{warm:.3f}" if warm is not None else "-"
        table.add_row(label, *(f"{s[k]:.3f}" for k in ("median", "p90", "min", "max")), warm_text)
    console.print(table)
    med = summary["ready_s"]["median"]
    verdict = "[green]meets[/green]" if summary["ready_s"]["max"] < TARGET_READY_S else "[red]misses[/red]"
    console.print(f"target apply-to-Ready < {TARGET_READY_S:.0f} s: {verdict} (median {med:.2f} s)")


def print_throughput(result: dict[str, Any], generator: str, rounds: int) -> None:
    table = Table(title=f"infer POST, iris (generator {generator}, median of {rounds} round(s))")
    for col in ("target", "conc", "req/s", "p50 ms", "p99 ms", "ok"):
        table.add_column(col, justify="left" if col == "target" else "right")
    for r in result["levels"]:
        table.add_row(
            r["target"],
            str(r["concurrency"]),
            f"{r['rps']:.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['ok']}/{r['requests']}",
        )
    console.print(table)
    over = Table(title="gateway overhead (vs the same replica direct) and model server vs floor")
    cols = ("conc", "gw p50 +ms", "gw p99 +ms", "gw/direct req/s", "server/floor req/s", "server/floor p50")
    for col in cols:
        over.add_column(col, justify="right")
    for o in result["overhead"]:
        over.add_row(
            str(o["concurrency"]),
            f"{o['gateway_p50_added_ms']:+.2f}",
            f"{o['gateway_p99_added_ms']:+.2f}",
            f"{o['gateway_rps_ratio']:.2f}",
            f"{o['modelserver_floor_rps_ratio']:.2f}",
            f"{o['modelserver_floor_p50_ratio']:.2f}",
        )
    console.print(over)


if __name__ == "__main__":
    sys.exit(main())
