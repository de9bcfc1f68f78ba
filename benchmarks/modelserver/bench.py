"""Benchmark the Pilothouse model server against a bare Starlette + orjson "floor".

Run: ``.venv/bin/python benchmarks/modelserver/bench.py [--requests 3000] [--json out.json]``

``--batching`` instead compares dynamic batching off / on (predict on the event loop) / on (predict on a
worker thread) for the same sklearn server at ``--batch-concurrency`` (default 32), with
``--max-batch-size 32 --max-batch-latency-ms 5``.

Trains an iris LogisticRegression into a temp dir, starts both servers as real processes, measures
cold start (spawn -> first 200 on /v2/health/ready) and idle RSS, then drives POST /infer at each
concurrency level with ``hey`` when it is on PATH (otherwise a built-in asyncio + httpx generator,
which is itself the bottleneck: compare only rows produced by the same generator). Every level is
bounded by a request count and a wall-clock timeout. The load generator shares the machine's cores
with the server, so absolute numbers are a floor of what the server can do on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import joblib
import orjson
import psutil
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
READY_DEADLINE_S = 60.0
#: Environment for the spawned servers; see ``--bytecode``.
SERVER_ENV: dict[str, str] = dict(os.environ)
BODY = {
    "id": "bench",
    "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]]}],
}


@dataclass
class LevelResult:
    server: str
    concurrency: int
    requests: int
    ok: int
    rps: float
    p50_ms: float
    p99_ms: float
    generator: str


@dataclass
class ServerStats:
    server: str
    cold_start_ms: list[float] = field(default_factory=list)
    idle_rss_mib: float = 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the server has not exited within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_ready(proc: subprocess.Popen[bytes], url: str, started: float) -> float:
    """Poll ``url`` until 200; return seconds since ``started`` (the spawn time)."""
    deadline = started + READY_DEADLINE_S
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
            try:
                if client.get(url).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.005)
    raise RuntimeError(f"not ready within {READY_DEADLINE_S}s: {url}")


BATCHING_KINDS = {
    "batching-off": [],
    "batching-loop": ["--max-batch-size", "32", "--max-batch-latency-ms", "5", "--batch-worker", "loop"],
    "batching-thread": ["--max-batch-size", "32", "--max-batch-latency-ms", "5", "--batch-worker", "thread"],
}


def server_command(kind: str, model: Path, port: int) -> list[str]:
    if kind in BATCHING_KINDS:
        return [*server_command("pilothouse", model, port), *BATCHING_KINDS[kind]]
    if kind in ("pilothouse", "pilothouse-onnx"):
        fmt = "onnx" if kind == "pilothouse-onnx" else "sklearn"
        path = model.with_suffix(".onnx") if fmt == "onnx" else model
        return [
            sys.executable, "-m", "pilothouse.serving.modelserver", "--name", "iris", "--model-uri", str(path),
            "--format", fmt, "--port", str(port), "--log-level", "warning",
        ]  # fmt: skip
    return [sys.executable, str(HERE / "floor_app.py"), "--model", str(model), "--port", str(port)]


@contextmanager
def running(kind: str, model: Path, stats: ServerStats) -> Iterator[str]:
    """Start the server, record its cold start and idle RSS, yield its base URL, always stop it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen(server_command(kind, model, port), stdout=subprocess.DEVNULL, env=SERVER_ENV)
    try:
        stats.cold_start_ms.append(wait_ready(proc, f"{base}/v2/health/ready", started) * 1000)
        time.sleep(0.3)
        stats.idle_rss_mib = psutil.Process(proc.pid).memory_info().rss / 2**20
        yield base
    finally:
        stop(proc)


def cold_start_only(kind: str, model: Path, stats: ServerStats) -> None:
    with running(kind, model, stats):
        pass


def run_hey(
    url: str, body_file: Path, n: int, c: int, timeout_s: float
) -> tuple[int, int, float, float, float]:
    n = max(c, n // c * c)  # hey sends n // c requests per worker
    out = subprocess.run(
        ["hey", "-n", str(n), "-c", str(c), "-m", "POST", "-T", "application/json", "-D", str(body_file),
         "-t", "10", url],
        capture_output=True, text=True, timeout=timeout_s, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", out).group(1)) * 1000  # type: ignore[union-attr]
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out).group(1)) * 1000  # type: ignore[union-attr]
    ok = sum(int(m) for m in re.findall(r"\[200\]\s+(\d+) responses", out))
    return n, ok, rps, p50, p99


async def _python_load(
    url: str, payload: bytes, n: int, c: int, timeout_s: float
) -> tuple[int, int, float, list[float]]:
    latencies: list[float] = []
    ok = 0
    issued = 0
    deadline = time.perf_counter() + timeout_s
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:

        async def worker() -> None:
            nonlocal ok, issued
            while issued < n and time.perf_counter() < deadline:
                issued += 1
                t0 = time.perf_counter()
                resp = await client.post(url, content=payload, headers=headers)
                latencies.append(time.perf_counter() - t0)
                ok += resp.status_code == 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        elapsed = time.perf_counter() - t0
    return len(latencies), ok, elapsed, latencies


def run_python(
    url: str, payload: bytes, n: int, c: int, timeout_s: float
) -> tuple[int, int, float, float, float]:
    done, ok, elapsed, lat = asyncio.run(_python_load(url, payload, n, c, timeout_s))
    lat.sort()
    p50 = lat[len(lat) // 2] * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    return done, ok, done / elapsed, p50, p99


def drive(
    generator: str, url: str, body_file: Path, n: int, c: int, timeout_s: float
) -> tuple[int, int, float, float, float]:
    if generator == "hey":
        return run_hey(url, body_file, n, c, timeout_s)
    return run_python(url, body_file.read_bytes(), n, c, timeout_s)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000, help="requests per concurrency level")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--level-timeout", type=float, default=60.0, help="wall-clock cap per level (s)")
    ap.add_argument("--cold-starts", type=int, default=5, help="cold starts measured per server")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per level; medians reported")
    ap.add_argument("--generator", choices=["auto", "hey", "python"], default="auto")
    ap.add_argument("--json", type=Path, help="also write the results here as JSON")
    ap.add_argument("--batching", action="store_true", help="compare dynamic batching off/on instead")
    ap.add_argument("--batch-concurrency", type=int, default=32)
    ap.add_argument(
        "--bytecode",
        choices=["cache", "inherit"],
        default="cache",
        help="cache: servers compile into a private PYTHONPYCACHEPREFIX, so cold starts after the first "
        "measure a deployment with .pyc files; inherit: use this environment as is (a venv without .pyc "
        "files plus PYTHONDONTWRITEBYTECODE recompiles numpy/scipy/sklearn on every start)",
    )
    args = ap.parse_args()
    generator = args.generator
    if generator == "auto":
        generator = "hey" if shutil.which("hey") else "python"
    levels = [int(c) for c in args.concurrency.split(",")]

    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as tmp:
        X, y = load_iris(return_X_y=True)
        model_path = Path(tmp) / "iris.joblib"
        clf = LogisticRegression(max_iter=1000).fit(X, y)
        joblib.dump(clf, model_path)
        kinds = ["pilothouse", "floor"]
        try:  # cold start without scikit-learn's import cost: the same model as ONNX
            from skl2onnx import to_onnx

            model_path.with_suffix(".onnx").write_bytes(
                to_onnx(clf, X[:1].astype("float32")).SerializeToString()
            )
            kinds.append("pilothouse-onnx")
        except ImportError:
            pass
        if args.bytecode == "cache":
            SERVER_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
            SERVER_ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(orjson.dumps(BODY))
        if args.batching:
            return batching_comparison(args, generator, model_path, body_file)

        stats = {kind: ServerStats(kind) for kind in kinds}
        # Warm the page cache once so every measured cold start pays the same (warm-cache) price.
        for kind in stats:
            cold_start_only(kind, model_path, ServerStats(kind))
        for _ in range(args.cold_starts):
            for kind, kind_stats in stats.items():
                cold_start_only(kind, model_path, kind_stats)

        results: list[LevelResult] = []
        with (
            running("pilothouse", model_path, ServerStats("pilothouse")) as ours,
            running("floor", model_path, ServerStats("floor")) as floor,
        ):
            urls = {"pilothouse": f"{ours}/v2/models/iris/infer", "floor": f"{floor}/v2/models/iris/infer"}
            for url in urls.values():  # warm-up: first requests pay lazy imports and allocations
                drive(generator, url, body_file, 300, 4, args.level_timeout)
            for c in levels:
                rounds: dict[str, list[tuple[int, int, float, float, float]]] = {k: [] for k in urls}
                for _ in range(args.rounds):  # alternate servers so drift on a shared box hits both alike
                    for kind, url in urls.items():
                        rounds[kind].append(
                            drive(generator, url, body_file, args.requests, c, args.level_timeout)
                        )
                for kind, runs in rounds.items():
                    n, ok = sum(r[0] for r in runs), sum(r[1] for r in runs)
                    rps, p50, p99 = (statistics.median(r[i] for r in runs) for i in (2, 3, 4))
                    results.append(LevelResult(kind, c, n, ok, rps, p50, p99, generator))

    print_report(results, stats, generator)
    print(f"bytecode: {args.bytecode}")
    if args.json:
        report = {
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "generator": generator,
            "bytecode": args.bytecode,
            "levels": [asdict(r) for r in results],
            "servers": {k: asdict(v) for k, v in stats.items()},
        }
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0 if all(r.ok == r.requests for r in results) else 1


def batching_comparison(args: argparse.Namespace, generator: str, model: Path, body_file: Path) -> int:
    """Batching off vs on at one concurrency; servers alternate per round, medians reported."""
    c = args.batch_concurrency
    rounds: dict[str, list[tuple[int, int, float, float, float]]] = {k: [] for k in BATCHING_KINDS}
    for _ in range(args.rounds):
        for kind in BATCHING_KINDS:
            with running(kind, model, ServerStats(kind)) as base:
                url = f"{base}/v2/models/iris/infer"
                drive(generator, url, body_file, 300, 4, args.level_timeout)  # warm-up
                rounds[kind].append(drive(generator, url, body_file, args.requests, c, args.level_timeout))
    results = []
    print(
        f"\nload generator: {generator}; cpus: {os.cpu_count()}; concurrency {c}; medians of {args.rounds} rounds"
    )
    print(f"{'server':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ok':>11}")
    for kind, runs in rounds.items():
        n, ok = sum(r[0] for r in runs), sum(r[1] for r in runs)
        rps, p50, p99 = (statistics.median(r[i] for r in runs) for i in (2, 3, 4))
        results.append(LevelResult(kind, c, n, ok, rps, p50, p99, generator))
        print(f"{kind:<16} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f} {ok:>5}/{n:<5}")
    if args.json:
        args.json.write_bytes(
            orjson.dumps({"levels": [asdict(r) for r in results]}, option=orjson.OPT_INDENT_2)
        )
    return 0 if all(r.ok == r.requests for r in results) else 1


def print_report(results: list[LevelResult], stats: dict[str, ServerStats], generator: str) -> None:
    print(f"\nload generator: {generator}; cpus: {os.cpu_count()} (shared by server and generator)\n")
    print("latency resolution 0.1 ms (hey); each row: median of rounds; ok = 200s / requests sent")
    print(f"{'server':<11} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ok':>11}")
    for r in results:
        print(
            f"{r.server:<11} {r.concurrency:>4} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.ok:>5}/{r.requests:<5}"
        )
    print(f"\n{'ours/floor':<11} {'conc':>4} {'req/s':>9} {'p50':>8} {'p99':>8}")
    by = {(r.server, r.concurrency): r for r in results}
    for c in sorted({r.concurrency for r in results}):
        a, b = by[("pilothouse", c)], by[("floor", c)]
        print(
            f"{'ratio':<11} {c:>4} {a.rps / b.rps:>9.2f} {a.p50_ms / b.p50_ms:>8.2f} {a.p99_ms / b.p99_ms:>8.2f}"
        )
    print(f"\n{'server':<16} {'cold start ms: median (runs)':<40} {'idle RSS MiB':>12}")
    for s in stats.values():
        if not s.cold_start_ms:
            continue
        runs = ", ".join(f"{v:.0f}" for v in s.cold_start_ms)
        med = statistics.median(s.cold_start_ms)
        print(f"{s.server:<16} {f'{med:.0f} ({runs})':<40} {s.idle_rss_mib:>12.1f}")


if __name__ == "__main__":
    sys.exit(main())
