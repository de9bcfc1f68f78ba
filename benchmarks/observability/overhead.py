"""Do metering and metrics cost the model server more than 2 % of its request rate? Before and after.

Run: ``.venv/bin/python benchmarks/observability/overhead.py [--rounds 7] [--requests 40000] [--json out.json]``
(``--quick`` for a smoke run of well under a minute; its numbers mean nothing).

Two real iris model servers (``python -m pilothouse.serving.modelserver``, sklearn), both running the
whole time, driven one at a time with the same load (``hey`` when on PATH, else bench.py's Python
generator) at one concurrency and a fixed request count per round:

- **before**: started with ``--no-metrics`` (no Prometheus recording per request, ``/metrics`` 404), and
  nothing samples it;
- **after**: the server as shipped (metrics on), while this process runs what the control plane runs
  against a replica: the metering loop's own usage sampler (``controllers.usage.PsutilSampler``, psutil
  on the server's process tree, NVML where present) every ``--sample-interval`` seconds (default: the
  platform's metering interval, ``Settings.metering_seconds``), and a Prometheus-style scrape of
  ``/metrics`` every ``--scrape-interval`` seconds (default 15; 0 leaves it out).

Rounds are interleaved (before, after, then after, before, ...), so drift on the machine hits both alike;
each variant's median req/s is reported with its spread ((max - min) / median), and the ratio
after / before of the medians and of each round's pair. Sampling starts with each "after" round, so a
round shorter than the interval still gets one sample: short rounds overstate the cost, never hide it.
The load generator shares the machine's cores with the server, so a spread above 2 % means this run
cannot resolve a 2 % effect: use a quiet machine for the real numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import orjson
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import machine_info, pick_generator, train_iris  # noqa: E402
from modelserver.bench import BODY, drive, free_port, stop, wait_ready  # noqa: E402
from pilothouse.controllers.usage import PsutilSampler  # noqa: E402
from pilothouse.serving.modelserver.metrics import ModelMetrics, NoMetrics  # noqa: E402
from pilothouse.settings import Settings  # noqa: E402

INFER = "/v2/models/iris/infer"
VARIANTS = ("before", "after")
BUDGET = 0.02
"""The claim under test: at most 2 % fewer requests per second with metering and metrics."""


@dataclass
class Round:
    index: int
    variant: str
    requests: int
    ok: int
    rps: float
    p50_ms: float
    p99_ms: float
    samples: int = 0
    scrapes: int = 0
    server_cpu_us: float = 0.0
    """The server's own CPU time (user + system) per successful request in this round."""


@dataclass
class Server:
    variant: str
    url: str
    pid: int


@contextlib.contextmanager
def model_server(variant: str, model: Path, pin: int | None = None) -> Iterator[Server]:
    """Start one model server (``--no-metrics`` for "before"); check the variant is what it claims."""
    port = free_port()
    cmd = [sys.executable, "-m", "pilothouse.serving.modelserver", "--name", "iris"]
    cmd += ["--model-uri", str(model), "--format", "sklearn", "--port", str(port), "--log-level", "warning"]
    if variant == "before":
        cmd.append("--no-metrics")
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    if pin is not None:
        os.sched_setaffinity(proc.pid, {pin})
    try:
        wait_ready(proc, f"{base}/v2/health/ready", time.perf_counter())
        metrics = httpx.get(f"{base}/metrics", timeout=5).status_code
        if metrics != (404 if variant == "before" else 200):
            raise RuntimeError(f"{variant}: /metrics answered {metrics}")
        yield Server(variant, base, proc.pid)
    finally:
        stop(proc)


def recording_cost_us(calls: int = 200_000) -> dict[str, float]:
    """What metrics add per request, measured directly: the model server's per-request recording call
    (``ModelMetrics.record``: a counter and a histogram of a cached child) against ``NoMetrics``, in
    this process, best of 5. Unlike the end-to-end rounds this has no load generator in it, so it
    resolves microseconds."""
    out = {}
    for name, metrics in (("on", ModelMetrics("iris")), ("off", NoMetrics())):
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(calls):
                metrics.record(200, 0.0012)
            best = min(best, time.perf_counter() - started)
        out[name] = best / calls * 1e6
    out["added"] = out["on"] - out["off"]
    metrics = ModelMetrics("iris")
    for status in (200, 400, 500):
        metrics.record(status, 0.0012)
    started = time.perf_counter()
    for _ in range(200):
        metrics.exposition()
    out["scrape"] = (time.perf_counter() - started) / 200 * 1e6
    return out


def server_cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class Observed:
    """While a round runs: the metering sampler on the server's pid, and scrapes of its ``/metrics``."""

    def __init__(
        self, sampler: PsutilSampler, server: Server, sample_every: float, scrape_every: float
    ) -> None:
        self.sampler = sampler
        self.server = server
        self.sample_every = sample_every
        self.scrape_every = scrape_every
        self.samples = 0
        self.scrapes = 0
        self.sample_cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="observed", daemon=True)

    def __enter__(self) -> Observed:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        next_sample = next_scrape = time.monotonic()
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_sample:
                    cpu = time.thread_time()
                    if self.sampler.sample(self.server.pid, ()) is None:
                        raise RuntimeError("the model server is gone")
                    self.sample_cpu_s += time.thread_time() - cpu
                    self.samples += 1
                    next_sample += self.sample_every
                if self.scrape_every and now >= next_scrape:
                    client.get(f"{self.server.url}/metrics").raise_for_status()
                    self.scrapes += 1
                    next_scrape += self.scrape_every
                due = min(next_sample, next_scrape) if self.scrape_every else next_sample
                self._stop.wait(max(0.0, due - time.monotonic()))


def _spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def summarize(rounds: list[Round]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in VARIANTS:
        rps = [r.rps for r in rounds if r.variant == variant]
        median = statistics.median(rps)
        out[variant] = {
            "rounds": len(rps),
            "median_rps": median,
            "min_rps": min(rps),
            "max_rps": max(rps),
            "spread": (max(rps) - min(rps)) / median,
            "server_cpu_us": statistics.median(r.server_cpu_us for r in rounds if r.variant == variant),
            "server_cpu_spread": _spread([r.server_cpu_us for r in rounds if r.variant == variant]),
            "p50_ms": statistics.median(r.p50_ms for r in rounds if r.variant == variant),
            "p99_ms": statistics.median(r.p99_ms for r in rounds if r.variant == variant),
            "ok": sum(r.ok for r in rounds if r.variant == variant),
            "requests": sum(r.requests for r in rounds if r.variant == variant),
        }
    by_round = {(r.index, r.variant): r for r in rounds}
    pairs = [
        by_round[(i, "after")].rps / by_round[(i, "before")].rps for i in sorted({r.index for r in rounds})
    ]
    out["ratio"] = out["after"]["median_rps"] / out["before"]["median_rps"]
    cpu_pairs = [
        by_round[(i, "before")].server_cpu_us / by_round[(i, "after")].server_cpu_us
        for i in sorted({r.index for r in rounds})
    ]
    # Capacity ratio: a CPU-bound server's request rate is 1 / (CPU per request).
    out["cpu_ratio"] = out["before"]["server_cpu_us"] / out["after"]["server_cpu_us"]
    out["cpu_pair_ratios"] = {
        "median": statistics.median(cpu_pairs),
        "min": min(cpu_pairs),
        "max": max(cpu_pairs),
    }
    out["pair_ratios"] = {"median": statistics.median(pairs), "min": min(pairs), "max": max(pairs)}
    return out


def verdict(summary: dict[str, Any]) -> str:
    ratio = summary["ratio"]
    noise = max(summary["before"]["spread"], summary["after"]["spread"])
    change = f"after/before = {ratio:.3f} ({(ratio - 1) * 100:+.1f} %)"
    if noise > BUDGET:
        return (
            f"{change}; but the rounds spread {noise * 100:.1f} %, more than the {BUDGET * 100:.0f} % budget: "
            "this run cannot resolve it (run it on a quiet machine)"
        )
    within = "within" if ratio >= 1 - BUDGET else "OVER"
    return f"{change}: {within} the {BUDGET * 100:.0f} % budget (rounds spread at most {noise * 100:.1f} %)"


def cpu_verdict(summary: dict[str, Any]) -> str:
    """The same question from the server's side: its CPU per request, which the load generator's own
    jitter does not move (on few cores the generator, not the server, often sets the request rate)."""
    before, after = summary["before"], summary["after"]
    ratio = summary["cpu_ratio"]
    pairs = summary["cpu_pair_ratios"]
    noise = max(before["server_cpu_spread"], after["server_cpu_spread"])
    head = (
        f"server CPU per request: before {before['server_cpu_us']:.0f} us, after {after['server_cpu_us']:.0f} us; "
        f"capacity after/before = {ratio:.3f} ({(ratio - 1) * 100:+.1f} %), per round pair {pairs['min']:.3f}-{pairs['max']:.3f}"
    )
    if noise > BUDGET:
        return f"{head}; rounds spread {noise * 100:.1f} %: cannot resolve a {BUDGET * 100:.0f} % effect"
    within = "within" if ratio >= 1 - BUDGET else "OVER"
    return f"{head}: {within} the {BUDGET * 100:.0f} % budget (rounds spread at most {noise * 100:.1f} %)"


def print_report(
    summary: dict[str, Any], rounds: list[Round], params: dict[str, Any], machine: dict[str, Any]
) -> None:
    scrape = f", /metrics scraped every {params['scrape_interval']:g} s" if params["scrape_interval"] else ""
    what = {
        "before": "`--no-metrics`, nothing sampling it",
        "after": f"metrics on; psutil sampler every {params['sample_interval']:g} s{scrape}",
    }
    print(
        f"\n{machine['cores']} cores, {machine['cpu']}; generator {params['generator']} "
        + (
            f"on other cores than the servers (pinned to CPU {params['pinned_server_cpu']}); "
            if params.get("pinned_server_cpu") is not None
            else "on the same cores; "
        )
        + f"load average at start {machine['load_avg_at_start']}, at end {[round(x, 2) for x in os.getloadavg()]}"
    )
    print(
        f"concurrency {params['concurrency']}, {params['requests']} requests per round, "
        f"{params['rounds']} interleaved rounds per variant{' (--quick: a smoke run)' if params['quick'] else ''}\n"
    )
    print("| variant | what runs | rounds | median req/s | min | max | spread | p50 ms | p99 ms | ok |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for variant in VARIANTS:
        s = summary[variant]
        print(
            f"| {variant} | {what[variant]} | {s['rounds']} | {s['median_rps']:.0f} | {s['min_rps']:.0f} "
            f"| {s['max_rps']:.0f} | {s['spread'] * 100:.1f} % | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
            f"| {s['ok']}/{s['requests']} |"
        )
    pairs = summary["pair_ratios"]
    print(
        f"\nafter / before: **{summary['ratio']:.3f}** (medians); per round pair: median {pairs['median']:.3f}, "
        f"range {pairs['min']:.3f}-{pairs['max']:.3f}"
    )
    print(
        "\n| round | before req/s | after req/s | after / before | before CPU us/req | after CPU us/req "
        "| samples | scrapes |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    by_round = {(r.index, r.variant): r for r in rounds}
    for i in sorted({r.index for r in rounds}):
        b, a = by_round[(i, "before")], by_round[(i, "after")]
        print(
            f"| {i + 1} | {b.rps:.0f} | {a.rps:.0f} | {a.rps / b.rps:.3f} | {b.server_cpu_us:.0f} "
            f"| {a.server_cpu_us:.0f} | {a.samples} | {a.scrapes} |"
        )
    cost = params.get("sample_cpu_us")
    if cost is not None:
        print(f"\nsampler CPU per sample (in the sampling process, not the server): {cost:.0f} us")
    print(f"\n{verdict(summary)}")
    print(cpu_verdict(summary))
    rec = params.get("recording_us")
    if rec is not None:
        share = rec["added"] / summary["before"]["server_cpu_us"]
        print(
            f"recording one request's metrics: {rec['on']:.2f} us on, {rec['off']:.2f} us off: "
            f"{rec['added']:.2f} us added = {share * 100:.2f} % of the server's "
            f"{summary['before']['server_cpu_us']:.0f} us of CPU per request; one /metrics scrape "
            f"{rec['scrape']:.0f} us of server CPU"
        )


def parse_args() -> argparse.Namespace:
    default_interval = Settings().metering_seconds
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 rounds x 1500 requests")
    ap.add_argument("--rounds", type=int, help="rounds per variant, interleaved (default 7, at least 5)")
    ap.add_argument("--requests", type=int, help="requests per round (default 40000: ~10-20 s a round)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument(
        "--sample-interval",
        type=float,
        default=default_interval,
        help=f"seconds between usage samples (default {default_interval:g}: pilothouse up's --metering-interval)",
    )
    ap.add_argument(
        "--scrape-interval", type=float, default=15.0, help="seconds between /metrics scrapes (0: none)"
    )
    ap.add_argument("--generator", choices=["auto", "hey", "python"], default="auto")
    ap.add_argument("--round-timeout", type=float, default=180.0, help="wall-clock cap per round (s)")
    ap.add_argument("--json", type=Path, help="also write every raw number here")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="pin both servers to the last core and the generator to the others (less noise on few cores)",
    )
    ap.add_argument(
        "--same-servers",
        dest="fresh",
        action="store_false",
        help="keep one server per variant for the whole run (default: fresh servers every round)",
    )
    args = ap.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.requests = args.requests or (1500 if args.quick else 40000)
    if args.rounds < 5 and not args.quick:
        ap.error("use at least 5 rounds per variant (or --quick for a smoke run)")
    return args


def main() -> int:
    args = parse_args()
    generator = pick_generator(args.generator)
    machine = machine_info(generator)
    params: dict[str, Any] = {
        "quick": args.quick,
        "rounds": args.rounds,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "sample_interval": args.sample_interval,
        "scrape_interval": args.scrape_interval,
        "generator": generator,
    }
    server_cpu = None
    if args.pin:
        # The servers on the last core, this process, its sampler and the load generator (a child, it
        # inherits) on the others: the generator no longer steals the server's core at random.
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            raise SystemExit("--pin needs at least 2 cores")
        server_cpu = cores[-1]
        os.sched_setaffinity(0, set(cores[:-1]))
    params["pinned_server_cpu"] = server_cpu
    rounds: list[Round] = []
    sampler = PsutilSampler.with_nvml()
    samples_cpu_s, samples = 0.0, 0
    with tempfile.TemporaryDirectory(prefix="pilothouse-obs-bench-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        body_file = work / "body.json"
        body_file.write_bytes(orjson.dumps(BODY))
        model = train_iris(work)
        servers: dict[str, Server] = {}
        try:
            for index in range(args.rounds):
                if index == 0 or args.fresh:
                    # Fresh processes every round: a server process is a little faster or slower for
                    # its whole life (memory layout, hash seeds), which would otherwise be read as the
                    # variant's cost.
                    stack.close()
                    servers = {v: stack.enter_context(model_server(v, model, server_cpu)) for v in VARIANTS}
                    for server in servers.values():  # warm-up: lazy imports, allocations, connections
                        drive(
                            generator,
                            server.url + INFER,
                            body_file,
                            500,
                            args.concurrency,
                            args.round_timeout,
                        )
                # ABBA order: each variant goes first in half the rounds, so a trend within a round
                # (warm caches, a neighbour starting up) does not favour one of them.
                order = list(VARIANTS) if index % 2 == 0 else list(reversed(VARIANTS))
                for variant in order:
                    server = servers[variant]
                    url = server.url + INFER
                    cpu_before = server_cpu_seconds(server.pid)
                    if variant == "before":
                        result = drive(
                            generator, url, body_file, args.requests, args.concurrency, args.round_timeout
                        )
                        rounds.append(Round(index, variant, *result))
                    else:
                        with Observed(sampler, server, args.sample_interval, args.scrape_interval) as seen:
                            result = drive(
                                generator, url, body_file, args.requests, args.concurrency, args.round_timeout
                            )
                        rounds.append(
                            Round(index, variant, *result, samples=seen.samples, scrapes=seen.scrapes)
                        )
                        samples_cpu_s += seen.sample_cpu_s
                        samples += seen.samples
                    spent = server_cpu_seconds(server.pid) - cpu_before
                    rounds[-1].server_cpu_us = spent / max(rounds[-1].ok, 1) * 1e6
                print(
                    f"round {index + 1}/{args.rounds}: "
                    + ", ".join(f"{r.variant} {r.rps:.0f} req/s" for r in rounds[-2:]),
                    flush=True,
                )
        finally:
            sampler.close()
    params["sample_cpu_us"] = samples_cpu_s / samples * 1e6 if samples else None
    params["recording_us"] = recording_cost_us(20_000 if args.quick else 200_000)
    summary = summarize(rounds)
    print_report(summary, rounds, params, machine)
    if args.json:
        report = {
            "machine": machine,
            "params": params,
            "summary": summary,
            "rounds": [asdict(r) for r in rounds],
        }
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        print(f"raw numbers written to {args.json}")
    return 0 if all(r.ok == r.requests for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
