"""``make demo``: the platform's main jobs end to end on the embedded control plane.

1. Serving: trains the iris model, starts ``pilothouse up`` in the background on free ports with a
   temporary data dir, applies the endpoint, waits for Ready (with a progress display), sends real
   predictions through the endpoint's URL and prints them with latency, then deletes the endpoint.
2. GPU queue: two teams share 4 GPUs (declared, so the demo runs on machines without one): team vision
   borrows nlp's idle GPUs, then nlp submits a job and the queue reclaims its quota by preempting one of
   vision's borrowed jobs, which is requeued.
3. Cost: what the endpoint and the jobs cost, by endpoint and by team (``pilothouse cost``).
Finally it stops the platform and checks that no process it started is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from pilothouse.api.job import Job
from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.api.registry import resolve_kind
from pilothouse.client import PilothouseClient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "iris"
CLI = [sys.executable, "-m", "pilothouse.cli"]
console = Console(highlight=False)

SAMPLES = [
    ([5.1, 3.5, 1.4, 0.2], "setosa"),
    ([6.7, 3.0, 5.2, 2.3], "virginica"),
    ([5.9, 3.0, 4.2, 1.5], "versicolor"),
    ([6.3, 2.5, 5.0, 1.9], "virginica"),
]
CLASSES = ["setosa", "versicolor", "virginica"]
JOBS = ROOT / "examples" / "jobs"
DEMO_GPUS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def step(text: str) -> None:
    console.print(f"\n[bold cyan]==>[/bold cyan] [bold]{text}[/bold]")


def run_cli(*args: str, env: dict[str, str]) -> str:
    console.print(f"[dim]$ pilothouse {' '.join(args)}[/dim]")
    result = subprocess.run([*CLI, *args], env=env, text=True, capture_output=True, check=False)
    if result.stdout:
        sys.stdout.write(result.stdout)  # as the CLI printed it: tables are not re-wrapped
        sys.stdout.flush()
    if result.returncode != 0:
        console.print(result.stderr.rstrip(), markup=False, style="red")
        raise SystemExit(f"`pilothouse {' '.join(args)}` failed with exit code {result.returncode}")
    return result.stdout


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"pilothouse up exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the control plane did not become ready in time")


def predict(url: str) -> None:
    table = Table(title="Predictions through the endpoint URL", header_style="bold")
    for column in ("input", "expected", "predicted", "latency"):
        table.add_column(column)
    with httpx.Client(timeout=10.0) as http:
        for features, expected in SAMPLES:
            body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": features}]}
            started = time.perf_counter()
            response = http.post(f"{url}/v2/models/iris/infer", json=body)
            elapsed = (time.perf_counter() - started) * 1e3
            response.raise_for_status()
            label = CLASSES[int(response.json()["outputs"][0]["data"][0])]
            mark = "[green]✓[/green]" if label == expected else "[red]✗[/red]"
            table.add_row(str(features), expected, f"{label} {mark}", f"{elapsed:.1f} ms")
        timings = []
        body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": SAMPLES[0][0]}]}
        for _ in range(200):
            started = time.perf_counter()
            http.post(f"{url}/v2/models/iris/infer", json=body).raise_for_status()
            timings.append((time.perf_counter() - started) * 1e3)
    console.print(table)
    timings.sort()
    console.print(
        f"200 sequential requests: p50 {timings[100]:.2f} ms, p99 {timings[197]:.2f} ms "
        "(client -> gateway -> model server, loopback)"
    )


def canary(server: str, endpoint_url: str, env: dict[str, str]) -> None:
    step("Training v2 of the model and rolling it out as a canary (20% -> 60% -> 100%)")
    subprocess.run([sys.executable, str(EXAMPLE / "train.py"), str(EXAMPLE / "model-v2.joblib")], check=True)
    run_cli("apply", "-f", str(EXAMPLE / "endpoint-v2.yaml"), env=env)
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": SAMPLES[0][0]}]}
    served: dict[str, int] = {}
    failures = 0
    shown: set[str] = set()
    with PilothouseClient(server) as client, httpx.Client(timeout=10.0) as http:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            response = http.post(f"{endpoint_url}/v2/models/iris/infer", json=body)
            failures += response.status_code != 200
            obj = client.get(resolve_kind("me"), "default", "iris")
            assert isinstance(obj, ModelEndpoint)
            split = ", ".join(f"revision {t.revision}: {t.percent}%" for t in obj.status.traffic)
            served[split] = served.get(split, 0) + 1
            if split not in shown:
                shown.add(split)
                console.print(f"  traffic: {split}")
            if obj.status.rolloutPhase in ("Completed", "RolledBack") and obj.status.latestRevision == 2:
                break
            time.sleep(0.02)
    run_cli("rollout", "status", "iris", env=env)
    run_cli("rollout", "history", "iris", env=env)
    console.print(f"{sum(served.values())} requests during the rollout, {failures} failed")


def job_phases(client: PilothouseClient) -> dict[str, str]:
    return {
        f"{j.metadata.namespace}/{j.metadata.name}": j.status.phase
        for j in client.list(resolve_kind("job"))
        if isinstance(j, Job)
    }


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    with console.status(what):
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout:.0f} s: {what}")


def gpu_queue(server: str, env: dict[str, str]) -> None:
    try:
        _gpu_queue(server, env)
    except SystemExit:
        run_cli("get", "jobs", "-A", "-o", "wide", env=env)  # show the state the demo got stuck in
        raise


def _gpu_queue(server: str, env: dict[str, str]) -> None:
    step(f"GPU queue: two teams share {DEMO_GPUS} GPUs (declared with --accelerators)")
    run_cli("apply", "-f", str(JOBS / "teams.yaml"), env=env)
    run_cli("apply", "-f", str(JOBS / "vision-jobs.yaml"), env=env)
    with PilothouseClient(server) as client:
        wait_until(
            "team vision starts two 2-GPU jobs, borrowing nlp's idle quota",
            lambda: (
                [job_phases(client).get(f"vision/{n}") for n in ("resnet", "vit")] == ["Running", "Running"]
            ),
        )
        run_cli("get", "jobs", "-A", env=env)
        run_cli("get", "teams", env=env)
        step("Team nlp submits a 2-worker job: the queue reclaims nlp's quota from vision's borrowed job")
        run_cli("apply", "-f", str(JOBS / "nlp-job.yaml"), env=env)
        wait_until(
            "reclaiming nlp's GPUs", lambda: job_phases(client).get("nlp/bert") in ("Running", "Succeeded")
        )
        run_cli("get", "jobs", "-A", "-o", "wide", env=env)
        run_cli("queue", env=env)
        wait_until("bert trains for 3 epochs", lambda: job_phases(client).get("nlp/bert") == "Succeeded")
        run_cli("logs", "job", "bert", "-n", "nlp", env=env)
        preempted = [
            j
            for j in client.list(resolve_kind("job"), "vision")
            if isinstance(j, Job) and j.status.preemptions
        ]
        for job in preempted:
            console.print(
                f"[bold]{job.metadata.name}[/bold] was preempted {job.status.preemptions}x and requeued "
                f"(retries kept: {job.status.failures} failures); now {job.status.phase}"
            )
        if not preempted:
            raise SystemExit("no job of team vision was preempted: nlp's quota was not reclaimed")
        requeued = {f"vision/{j.metadata.name}" for j in preempted}

        def ran_again() -> bool:
            # Running again, or already done: a short job may finish between two polls on a slow machine.
            jobs = {
                f"vision/{j.metadata.name}": j
                for j in client.list(resolve_kind("job"), "vision")
                if isinstance(j, Job)
            }
            return all(
                jobs[k].status.attempts >= 2 and jobs[k].status.phase in ("Running", "Succeeded")
                for k in requeued
            )

        wait_until("the requeued job runs again on the GPUs bert released", ran_again)
        run_cli("get", "teams", env=env)
    step("Cancelling vision's jobs")
    run_cli("delete", "job", "resnet", "vit", "-n", "vision", env=env)


def cost_report(env: dict[str, str]) -> None:
    """Cost: what the demo's endpoint and jobs cost, as metered by the control plane (docs/cost.md)."""
    step("What it all cost (metered replicas and job workers, OpenCost's default prices)")
    run_cli("cost", "--by", "endpoint", "--window", "1h", env=env)
    run_cli("cost", "--by", "team", "--window", "1h", env=env)


def main() -> int:
    step("Training the iris model")
    subprocess.run([sys.executable, str(EXAMPLE / "train.py")], check=True)

    with tempfile.TemporaryDirectory(prefix="pilothouse-demo-") as data_dir:
        port, gateway_port = free_port(), free_port()
        server = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PILOTHOUSE_SERVER": server}
        log_path = Path(data_dir) / "up.log"
        step(
            f"Starting the embedded control plane (pilothouse up --port {port} --gateway-port {gateway_port} "
            f"--accelerators nvidia.com/gpu={DEMO_GPUS})"
        )
        with log_path.open("wb") as log:
            up = subprocess.Popen(
                [
                    *CLI,
                    "up",
                    "--port",
                    str(port),
                    "--gateway-port",
                    str(gateway_port),
                    "--data-dir",
                    data_dir,
                    "--accelerators",
                    f"nvidia.com/gpu={DEMO_GPUS}",
                    "--metering-interval",  # cost: sample often enough to catch the short demo jobs
                    "2",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started: list[psutil.Process] = []
        try:
            wait_healthy(server, up)
            step("Applying examples/iris/endpoint.yaml and waiting for Ready")
            t0 = time.perf_counter()
            run_cli("apply", "-f", str(EXAMPLE / "endpoint.yaml"), "--wait", env=env)
            console.print(f"apply -> Ready in {time.perf_counter() - t0:.2f} s")
            run_cli("get", "modelendpoints", env=env)
            started = psutil.Process(up.pid).children(recursive=True)
            url = run_cli("get", "me", "iris", "-o", "json", env=env)
            endpoint_url = json.loads(url)["status"]["url"]
            step(f"Sending predictions to {endpoint_url}")
            predict(endpoint_url)
            canary(server, endpoint_url, env)
            step("Describing the endpoint")
            run_cli("describe", "modelendpoint", "iris", env=env)
            step("Model server logs")
            run_cli("logs", "iris", "--tail", "5", env=env)
            step("Deleting the endpoint")
            run_cli("delete", "modelendpoint", "iris", env=env)
            gpu_queue(server, env)
            started = psutil.Process(up.pid).children(recursive=True) + started
            cost_report(env)
        finally:
            step("Stopping the control plane")
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()
                console.print("[red]the control plane did not stop in 30 s; killed[/red]")
        leftovers = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if leftovers:
            console.print(f"[red]processes left behind: {[p.pid for p in leftovers]}[/red]")
            return 1
        console.print(
            f"control plane exited with {up.returncode}; {len(started)} replica process(es) started, none left behind"
        )
        return 0 if up.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
