"""How long a GPU sits idle between one job and the next on the embedded platform, against a bare loop.

The queue's promise is that when a job finishes, its GPU is verified clean and the next job starts at
once. This measures that promise end to end on a real ``pilothouse up`` with one declared GPU: N short
jobs are submitted together, so they run one after another on that GPU. Each job writes its own start
and end times (wall clock, from inside the worker process), so the gap between one job's end and the
next one's start is measured by the jobs themselves, not by the platform's bookkeeping. The floor is the
same N commands run back to back by a plain ``subprocess`` loop: what any runner pays to start a
process. Also reported: the first job's admission latency on an idle machine (create -> Running, from
the API), and what the platform itself exports (``pilothouse_gpu_handover_seconds``,
``pilothouse_gpu_idle_while_jobs_wait_seconds_total``).

Run: ``.venv/bin/python benchmarks/scheduling/turnaround.py [--jobs 20] [--seconds 0.3] [--json FILE]``.
What it does not show: NVML's clean-GPU check (declared GPUs have no NVML; with NVML the hand-over also
waits for the driver to list no process of the last holder), and queue passes under load.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine_info, percentile, pilothouse_up

JOBS_API = "/apis/pilothouse.dev/v1alpha1/namespaces/default/jobs"
WORK = "import sys, time; out = open(sys.argv[1], 'a'); out.write(f'start {{time.time()}}\\n'); out.flush(); time.sleep({seconds}); out.write(f'end {{time.time()}}\\n')"


def command(seconds: float, record: Path) -> list[str]:
    return [sys.executable, "-c", WORK.format(seconds=seconds), str(record)]


def gaps(records: list[Path]) -> list[float]:
    """Idle time between consecutive jobs: each job's start minus the previous job's end."""
    spans = []
    for path in records:
        times = dict(line.split() for line in path.read_text().splitlines())
        spans.append((float(times["start"]), float(times["end"])))
    spans.sort()
    return [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(spans)]


def floor(jobs: int, seconds: float, directory: Path) -> dict[str, Any]:
    records = [directory / f"floor-{i}.txt" for i in range(jobs)]
    started = time.perf_counter()
    for record in records:
        subprocess.run(command(seconds, record), check=True)
    return {"wall_s": time.perf_counter() - started, "gaps_s": gaps(records)}


def platform(jobs: int, seconds: float, directory: Path) -> dict[str, Any]:
    records = [directory / f"job-{i}.txt" for i in range(jobs)]
    data = directory / "data"
    data.mkdir()
    with (
        pilothouse_up(data, ["--accelerators", "nvidia.com/gpu=1"]) as plat,
        httpx.Client(base_url=plat.api_url, timeout=30.0) as api,
    ):

        def job(i: int) -> dict[str, Any]:
            return {
                "apiVersion": "pilothouse.dev/v1alpha1",
                "kind": "Job",
                "metadata": {"name": f"job-{i:03d}", "namespace": "default"},
                "spec": {
                    "command": command(seconds, records[i]),
                    "resources": {"accelerators": {"nvidia.com/gpu": 1}},
                },
            }

        def phase(i: int) -> str:
            value: str = api.get(f"{JOBS_API}/job-{i:03d}").json()["status"].get("phase", "")
            return value

        created = time.perf_counter()
        api.post(JOBS_API, json=job(0)).raise_for_status()
        while phase(0) == "Pending":
            time.sleep(0.005)
        admission = time.perf_counter() - created
        while phase(0) != "Succeeded":  # the machine is idle again before the batch
            time.sleep(0.01)
        records[0].unlink()
        started = time.perf_counter()
        for i in range(jobs):
            body = job(i)
            body["metadata"]["name"] = f"batch-{i:03d}"
            api.post(JOBS_API, json=body).raise_for_status()
        while not all(
            api.get(f"{JOBS_API}/batch-{i:03d}").json()["status"].get("phase") in ("Succeeded", "Failed")
            for i in range(jobs)
        ):
            time.sleep(0.05)
        wall = time.perf_counter() - started
        metrics = {
            s.name: s.value
            for family in text_string_to_metric_families(api.get("/metrics").text)
            for s in family.samples
        }
    return {
        "admission_idle_s": admission,
        "wall_s": wall,
        "gaps_s": gaps(records),
        "handover_count": metrics.get("pilothouse_gpu_handover_seconds_count", 0.0),
        "handover_sum_s": metrics.get("pilothouse_gpu_handover_seconds_sum", 0.0),
        "idle_while_waiting_s": metrics.get("pilothouse_gpu_idle_while_jobs_wait_seconds_total", 0.0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=0.3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pilothouse-turnaround-") as tmp:
        base = floor(args.jobs, args.seconds, Path(tmp))
        ours = platform(args.jobs, args.seconds, Path(tmp))
    result = {
        "machine": machine_info("none"),
        "jobs": args.jobs,
        "seconds": args.seconds,
        "floor": base,
        "pilothouse": ours,
    }
    print(f"{args.jobs} jobs of {args.seconds} s on one GPU, one after another")
    print(f"{'':<12} {'wall s':>8} {'gap median ms':>14} {'gap p95 ms':>11} {'gap max ms':>11}")
    for name, run in (("bare loop", base), ("pilothouse", ours)):
        g = run["gaps_s"]
        print(
            f"{name:<12} {run['wall_s']:8.2f} {1000 * statistics.median(g):14.1f} "
            f"{1000 * percentile(g, 95):11.1f} {1000 * max(g):11.1f}"
        )
    print(
        f"ratio (pilothouse / bare loop): wall {ours['wall_s'] / base['wall_s']:.2f}, "
        f"median gap {statistics.median(ours['gaps_s']) / statistics.median(base['gaps_s']):.1f}"
    )
    print(f"first job on an idle machine: create -> Running in {1000 * ours['admission_idle_s']:.0f} ms")
    count = ours["handover_count"]
    mean = 1000 * ours["handover_sum_s"] / count if count else 0.0
    print(
        f"exported: {count:.0f} hand-overs, mean {mean:.1f} ms; "
        f"GPU idle while jobs waited {ours['idle_while_waiting_s']:.2f} GPU-s"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
