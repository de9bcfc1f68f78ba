"""Scheduler benchmark: the Philly trace under all five policies, and a 1,000-team scale test.

Run: ``.venv/bin/python benchmarks/scheduling/bench.py [--gpus 360,400] [--limit N] [--json FILE]``

(a) Replays the whole trace (82,247 jobs) at each cluster size through the simulator, every policy side
by side, and prints JCT, wait, utilization and fairness with ratios against strict FIFO. The default
sizes sit around the trace's average demand (total GPU-hours / span = 374 GPUs), where the cluster is
heavily loaded. (b) Scale: 1,000 teams in 10 cohorts and 50,000 pending jobs on a cluster with room
for many of them; times full ``schedule(snapshot)`` calls (snapshot -> decisions with reasons, positions
and ETAs for every waiting job) and reports admissions per second and per-call latency.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pilothouse.scheduling import GPU, JobRequest, Quota, Snapshot, TeamSpec, make_policy
from pilothouse.scheduling.sim_metrics import Metrics, measure
from pilothouse.scheduling.sim_run import simulate
from pilothouse.scheduling.sim_trace import load

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT.parent / "shared" / "data" / "philly" / "philly.csv"
POLICY_ORDER = ["fifo", "fifo-backfill", "sjf", "las", "fair"]
console = Console(highlight=False, width=200)


def machine() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def trace_runs(path: Path, sizes: list[int], limit: int | None, policies: list[str]) -> list[Metrics]:
    trace = load(path, limit)
    span = trace.jobs[-1].submit - trace.jobs[0].submit
    demand = sum(j.duration * j.gpus for j in trace.jobs) / max(span, 1.0)
    console.print(f"trace: {len(trace.jobs)} jobs over {span / 3600:.0f} h; average demand {demand:.0f} GPUs")
    results = []
    for gpus in sizes:
        for policy in policies:
            m = measure(simulate(trace.jobs, gpus, policy))
            console.print(f"  {gpus} GPUs {policy:14} done in {m.wall_s:.1f} s")
            results.append(m)
        if "fair" in policies:
            m = measure(simulate(trace.jobs, gpus, "fair", estimates="oracle"))
            console.print(f"  {gpus} GPUs fair (oracle)   done in {m.wall_s:.1f} s")
            results.append(m)
    return results


def show(results: list[Metrics]) -> None:
    for gpus in sorted({m.gpus for m in results}):
        rows = [m for m in results if m.gpus == gpus]
        base = next((m for m in rows if m.policy == "fifo"), rows[0])
        table = Table(title=f"Philly trace on {gpus} GPUs ({base.jobs} jobs run, {base.dropped} dropped)")
        for col in (
            "policy",
            "durations",
            "avg JCT h",
            "vs fifo",
            "p99 JCT h",
            "avg wait h",
            "makespan h",
            "util",
            "busy while waiting",
            "busy while arriving",
            "Jain",
            "team-h <90%",
            "<90% +1 job",
            "hours any <90%",
            "preempt",
            "wall s",
            "adm/s",
        ):
            table.add_column(col, justify="left" if col in {"policy", "durations"} else "right")
        for m in rows:
            table.add_row(
                m.policy,
                m.estimates,
                f"{m.avg_jct_h:.1f}",
                f"{m.avg_jct_h / base.avg_jct_h:.2f}",
                f"{m.p99_jct_h:.0f}",
                f"{m.avg_wait_h:.1f}",
                f"{m.makespan_h:.0f}",
                f"{m.utilization:.1%}",
                f"{m.busy_while_waiting:.1%}",
                f"{m.busy_while_arriving:.1%}",
                f"{m.jain:.3f}",
                f"{m.team_hours_below:.1%}",
                f"{m.team_hours_below_one_job:.1%}",
                f"{m.hours_any_below:.1%}",
                str(m.preemptions),
                f"{m.wall_s:.1f}",
                f"{m.admissions_per_s:,.0f}",
            )
        console.print(table)


def scale(teams: int = 1000, pending: int = 50_000, calls: int = 3, seed: int = 7) -> dict[str, Any]:
    rnd = random.Random(seed)
    specs = {
        f"team-{i:04d}": TeamSpec(f"team-{i:04d}", {GPU: Quota(20)}, cohort=f"cohort-{i % 10}")
        for i in range(teams)
    }
    names = sorted(specs)
    jobs = [
        JobRequest(
            f"job-{k:06d}",
            rnd.choice(names),
            rnd.choice([100, 500, 500, 1000]),
            float(rnd.randint(0, 86_400)),
            rnd.choice([1, 1, 1, 2, 4]),
            {GPU: 1},
            float(rnd.randint(60, 36_000)),
        )
        for k in range(pending)
    ]
    capacity = 20 * teams  # 20,000 GPUs: room for roughly a third of the queue
    snapshot = Snapshot(now=90_000.0, capacity={GPU: capacity}, teams=specs, running=[], pending=jobs)
    out: dict[str, Any] = {"teams": teams, "pending": pending, "capacity_gpus": capacity, "calls": []}
    for policy in ("fair", "fifo-backfill"):
        for _ in range(calls):
            started = time.perf_counter()
            decisions = make_policy(policy).schedule(snapshot)
            took = time.perf_counter() - started
            out["calls"].append(
                {
                    "policy": policy,
                    "seconds": took,
                    "admitted": len(decisions.admit),
                    "waiting": len(decisions.waiting),
                    "admissions_per_s": len(decisions.admit) / took,
                }
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--gpus", default="360,400", help="comma-separated cluster sizes")
    ap.add_argument("--limit", type=int, help="only the first N jobs")
    ap.add_argument("--policies", default=",".join(POLICY_ORDER))
    ap.add_argument("--skip-trace", action="store_true")
    ap.add_argument("--json", type=Path, help="also write every number here")
    args = ap.parse_args()
    report: dict[str, Any] = {"machine": machine()}
    console.print(f"machine: {report['machine']}")
    if not args.skip_trace:
        sizes = [int(g) for g in args.gpus.split(",")]
        results = trace_runs(args.trace, sizes, args.limit, args.policies.split(","))
        show(results)
        report["trace"] = [m.as_dict() for m in results]
    sc = scale()
    table = Table(title=f"scale: {sc['teams']} teams, {sc['pending']} pending, {sc['capacity_gpus']} GPUs")
    for col in ("policy", "call s", "admitted", "waiting (with reason, position, ETA)", "admissions/s"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for call in sc["calls"]:
        table.add_row(
            call["policy"],
            f"{call['seconds']:.2f}",
            str(call["admitted"]),
            str(call["waiting"]),
            f"{call['admissions_per_s']:,.0f}",
        )
    console.print(table)
    report["scale"] = sc
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
