"""Serving peers, side by side: our model server vs KServe vs MLServer (and the bare Starlette floor).

Run: ``.venv/bin/python benchmarks/serving/bench.py [--requests 3000] [--rounds 3] [--json out.json]``

Creates (once, then reuses) one venv per peer under ``/.bench/`` (``peers.py``: KServe 0.21 and
MLServer 1.7.1 cannot share one), trains the iris model with ``examples/iris/train.py``, and starts
the servers **one at a time** on free 127.0.0.1 ports:

- ``pilothouse``: our model server, direct (``benchmarks/modelserver/bench.py``'s ``running``);
- ``floor``: the bare Starlette + orjson app from the same file, the lower bound for a Python server;
- ``kserve``: KServe 0.21's Python ModelServer with a custom ``kserve.Model`` (v2/OIP route);
- ``mlserver``: MLServer 1.7.1 + mlserver-sklearn, ``parallel_workers=0`` (in-process);
- ``mlserver-default``: the same with MLServer's default worker pool (``parallel_workers`` unset);
- ``gateway`` (``--gateway``): our model server behind ``pilothouse up``'s gateway (``status.url``).

Every target gets the same OIP request (``BODY``) on ``/v2/models/iris/infer`` from the same ``hey``
command (``drive``): a 300-request warm-up, then each concurrency level ``--rounds`` times, medians
reported. Cold start is spawn -> first 200 on the readiness URL; idle RSS is summed over the server's
process tree. Every process started is stopped in ``finally``. hey shares the machine's cores with the
server, so the numbers are floors and only the ratios between rows mean much.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import peers  # noqa: E402

from common import pick_generator, train_iris  # noqa: E402
from modelserver.bench import BODY, ServerStats, drive, free_port, running, wait_ready  # noqa: E402

INFER = "/v2/models/iris/infer"
PEERS = ("kserve", "mlserver", "mlserver-default")


def tree_rss_mib(pid: int) -> float:
    proc = psutil.Process(pid)
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


def stop_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it was started in its own session), then SIGKILL leftovers."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=5)
    for p in alive:  # a child that left the group
        with contextlib.suppress(psutil.Error):
            p.kill()


@contextlib.contextmanager
def running_peer(peer: peers.Peer, base: str, stats: ServerStats, log: Path) -> Iterator[str]:
    """Like ``modelserver.bench.running`` for a peer: cold start, process-tree RSS, always stopped."""
    started = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            peer.command, cwd=peer.cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        stats.cold_start_ms.append(wait_ready(proc, base + peer.ready_path, started) * 1000)
        time.sleep(0.3)
        stats.idle_rss_mib = tree_rss_mib(proc.pid)
        yield base
    finally:
        stop_tree(proc)


def starter(
    kind: str, work: Path, model: Path
) -> Callable[[ServerStats], contextlib.AbstractContextManager[str]]:
    """A function that starts ``kind`` (fresh ports each time) and yields its infer URL."""

    @contextlib.contextmanager
    def start(stats: ServerStats) -> Iterator[str]:
        if kind in ("pilothouse", "floor"):
            with running(kind, model, stats) as base:  # one process, no children: its RSS is the tree's
                yield base + INFER
            return
        if kind == "gateway":
            from gateway.bench import embedded

            with embedded(work, model) as (gateway_url, _replica):
                yield gateway_url + INFER
            return
        http = free_port()
        if kind == "kserve":
            peer = peers.kserve(work, model, http, free_port())
        else:
            workers = 0 if kind == "mlserver" else None
            peer = peers.mlserver(work, model, (http, free_port(), free_port()), workers)
        with running_peer(peer, f"http://127.0.0.1:{http}", stats, work / f"{kind}.log") as base:
            yield base + INFER

    return start


def bench_server(
    kind: str,
    start: Callable[[ServerStats], contextlib.AbstractContextManager[str]],
    args: argparse.Namespace,
    generator: str,
    body_file: Path,
    levels: list[int],
) -> tuple[ServerStats, list[dict[str, Any]]]:
    stats = ServerStats(kind)
    if kind != "gateway":  # one start to warm the page cache (discarded); the benchmarked start counts too
        with start(ServerStats(kind)):
            pass
        for _ in range(args.cold_starts - 1):
            with start(stats):
                pass
    rows = []
    with start(stats) as url:
        drive(generator, url, body_file, 300, 4, args.level_timeout)  # warm-up
        for c in levels:
            rs = [
                drive(generator, url, body_file, args.requests, c, args.level_timeout)
                for _ in range(args.rounds)
            ]
            rps, p50, p99 = (statistics.median(r[i] for r in rs) for i in (2, 3, 4))
            n, ok = sum(r[0] for r in rs), sum(r[1] for r in rs)
            rows.append({"server": kind, "c": c, "n": n, "ok": ok, "rps": rps, "p50_ms": p50, "p99_ms": p99})
            print(f"  {kind:<17}{c:>4}{rps:>9.0f}{p50:>9.2f}{p99:>9.2f}{ok:>7}/{n}", flush=True)
    return stats, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000, help="requests per server, level and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument(
        "--cold-starts",
        type=int,
        default=3,
        help="measured starts per server (after one discarded page-cache warm-up start)",
    )
    ap.add_argument("--servers", default="pilothouse,floor,kserve,mlserver,mlserver-default")
    ap.add_argument("--gateway", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--generator", choices=["auto", "hey", "python"], default="auto")
    ap.add_argument("--level-timeout", type=float, default=60.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    generator = pick_generator(args.generator)
    levels = [int(c) for c in args.concurrency.split(",")]
    kinds = args.servers.split(",") + (["gateway"] if args.gateway else [])
    load_before = os.getloadavg()
    print(f"load average before: {load_before}; cpus: {os.cpu_count()}; generator: {generator}", flush=True)
    for venv in {"kserve" if k == "kserve" else "mlserver" for k in kinds if k in PEERS}:
        peers.ensure_venv(venv)

    all_stats: dict[str, ServerStats] = {}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="servingbench-") as tmp:
        work = Path(tmp)
        model = train_iris(work)
        body_file = work / "body.json"
        body_file.write_bytes(orjson.dumps(BODY))
        print(f"  {'server':<17}{'c':>4}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'ok':>12}", flush=True)
        for kind in kinds:
            try:
                stats, kind_rows = bench_server(
                    kind, starter(kind, work, model), args, generator, body_file, levels
                )
            except Exception as exc:  # one failing peer must not lose the others' numbers
                print(f"  {kind}: skipped: {type(exc).__name__}: {exc}", flush=True)
                for log in work.glob(f"{kind}.log"):
                    print(log.read_text()[-2000:])
                continue
            all_stats[kind] = stats
            rows.extend(kind_rows)

    report(rows, all_stats, levels, load_before)
    if args.json:
        result = {
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "generator": generator,
            "rows": rows,
            "servers": {
                k: {"cold_start_ms": v.cold_start_ms, "idle_rss_mib": v.idle_rss_mib}
                for k, v in all_stats.items()
            },
        }
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0 if rows and all(r["ok"] == r["n"] for r in rows) else 1


def report(
    rows: list[dict[str, Any]], stats: dict[str, ServerStats], levels: list[int], load: tuple[float, ...]
) -> None:
    print(
        f"\nload average before: {load}, after: {os.getloadavg()}; cpus: {os.cpu_count()} (shared with hey)"
    )
    by = {(r["server"], r["c"]): r for r in rows}
    servers = list(dict.fromkeys(r["server"] for r in rows))
    head = "| server | " + " | ".join(f"c={c} req/s | c={c} p50 / p99 ms" for c in levels) + " |"
    print("\n" + head + "\n|" + "---|" * (1 + 2 * len(levels)))
    for s in servers:
        cells = []
        for c in levels:
            r = by.get((s, c))
            cells += [f"{r['rps']:.0f}", f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}"] if r else ["-", "-"]
        print(f"| {s} | " + " | ".join(cells) + " |")
    print(
        "\n| ratio (req/s) | " + " | ".join(f"c={c}" for c in levels) + " |\n|" + "---|" * (1 + len(levels))
    )
    for peer in ("floor", *PEERS, "gateway"):
        if peer == "gateway":
            pairs = [(by.get(("gateway", c)), by.get(("pilothouse", c))) for c in levels]
            label = "gateway / ours direct"
        else:
            pairs = [(by.get(("pilothouse", c)), by.get((peer, c))) for c in levels]
            label = f"ours / {peer}"
        if all(a and b for a, b in pairs):
            print(f"| {label} | " + " | ".join(f"{a['rps'] / b['rps']:.2f}" for a, b in pairs) + " |")  # type: ignore[index]
    print("\n| server | cold start ms: median (runs) | idle RSS MiB (process tree) |\n|---|---|---|")
    for s in stats.values():
        if s.cold_start_ms:
            runs = ", ".join(f"{v:.0f}" for v in s.cold_start_ms)
            print(
                f"| {s.server} | {statistics.median(s.cold_start_ms):.0f} ({runs}) | {s.idle_rss_mib:.0f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
