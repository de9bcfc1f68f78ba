"""The serving issue's "Done when", end to end: real ``pilothouse up``, real model servers, real HTTP.

Every test drives the public surface only — manifests through the CLI, inference through
``status.url`` on the gateway — while background clients keep requests flowing, and counts every
answer that is not a 200 (or not the right prediction) and every transport error. The claims:

- a rolling update and a canary replace the model under continuous load with zero failed requests,
  and the canary's traffic split is visible in ``status.traffic`` while it runs;
- a canary to a model that cannot load rolls back by itself (``rollout status`` exits 1 with the
  reason), the stable revision keeps 100% and no request fails; ``rollout undo`` completes again;
- ``minReplicas: 0`` scales to zero when traffic stops, and the next request is held and answered
  (not 503) once a replica has started;
- a burst of concurrency scales up (panic mode) with a ``ScaledUp`` event that says why, and back
  down once the burst is over (a 50 ms Python model keeps the concurrency up whatever the machine);
- a scale-down under load loses no request.

Timings are near the smallest the API accepts (``stableWindowSeconds: 6``, 1 s canary pauses; one
4 s step, so that ``rollout pause`` lands mid-canary and the CLI can show the split while it holds).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import yaml

from support import ControlPlane, wait_for

pytestmark = pytest.mark.slow

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
BODY = {"inputs": [{"name": "input-0", "shape": [len(ROWS), 4], "datatype": "FP64", "data": ROWS}]}
API = "/apis/pilothouse.dev/v1alpha1/namespaces/default/modelendpoints"

SLOW_MODEL = '''
import time

import numpy as np


class Model:
    """Takes 50 ms per request, so a handful of clients keeps the gateway's concurrency high."""

    def predict(self, x):
        time.sleep(0.05)
        return np.zeros(len(x))
'''


# -- helpers ---------------------------------------------------------------------------------------


def manifest(path: Path, model: dict[str, Any] | Path, name: str = "iris", **spec: object) -> Path:
    source = {"uri": str(model)} if isinstance(model, Path) else model
    doc = {
        "apiVersion": "pilothouse.dev/v1alpha1",
        "kind": "ModelEndpoint",
        "metadata": {"name": name},
        "spec": {"model": {"name": "iris", **source}, **spec},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def endpoint(plane: ControlPlane, name: str = "iris") -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"{plane.url}{API}/{name}", timeout=5).raise_for_status().json()
    return doc


def endpoint_json(plane: ControlPlane, name: str = "iris") -> dict[str, Any]:
    """The endpoint as ``pilothouse get me NAME -o json`` prints it."""
    doc: dict[str, Any] = json.loads(plane.cli("get", "me", name, "-o", "json").stdout)
    return doc


def split(doc: dict[str, Any]) -> dict[int, int]:
    return {t["revision"]: t["percent"] for t in doc["status"]["traffic"]}


def model_server_pids(plane: ControlPlane) -> set[int]:
    found = set()
    for proc in plane.descendants():
        try:
            if "pilothouse.serving.modelserver" in " ".join(proc.cmdline()):
                found.add(proc.pid)
        except Exception:  # exited between listing and reading: not a live server
            continue
    return found


def replicas(plane: ControlPlane, name: str = "iris") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(f"{plane.url}{API}/{name}/replicas", timeout=5).json()["items"]
    return items


def events(plane: ControlPlane, name: str = "iris") -> list[dict[str, Any]]:
    response = httpx.get(
        f"{plane.url}/apis/pilothouse.dev/v1alpha1/namespaces/default/events",
        params={"kind": "ModelEndpoint", "name": name},
        timeout=5,
    )
    items: list[dict[str, Any]] = response.raise_for_status().json()["items"]
    return items


def infer(url: str, timeout: float = 30.0) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/iris/infer", json=BODY, timeout=timeout)


@dataclass
class Load:
    """``concurrency`` clients posting inferences to ``url`` back to back until stopped.

    Bounded by ``stop()`` and by ``max_requests`` in all. Anything but a 200 with the ``expected``
    prediction is a failure (kept with its detail); so is a transport error.
    """

    url: str
    concurrency: int = 4
    expected: list[Any] | None = None
    max_requests: int = 200_000
    timeout: float = 30.0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    started: float = 0.0
    elapsed: float = 0.0
    slowest: float = 0.0

    @property
    def ok(self) -> int:
        with self._lock:
            return self.statuses[200] - sum(1 for f in self.failures if f.startswith("200"))

    def start(self) -> Load:
        self.started = time.monotonic()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.concurrency)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Load:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        assert not any(t.is_alive() for t in self._threads), "a load client did not stop"
        self.elapsed = time.monotonic() - self.started
        return self

    def _ticket(self) -> bool:
        with self._lock:
            if self._sent >= self.max_requests:
                return False
            self._sent += 1
            return True

    def _run(self) -> None:
        target = f"{self.url}/v2/models/iris/infer"
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set() and self._ticket():
                failure = None
                sent = time.perf_counter()
                try:
                    response = client.post(target, json=BODY)
                    status = response.status_code
                    if status != 200:
                        failure = f"{status} {response.text[:300]}"
                    elif self.expected is not None:
                        got = response.json()["outputs"][0]["data"]
                        if got != self.expected:
                            failure = f"200 wrong prediction {got} != {self.expected}"
                except Exception as exc:  # transport errors and anything unexpected count as failures
                    status, failure = 0, f"transport {type(exc).__name__}: {exc}"
                latency = time.perf_counter() - sent
                with self._lock:
                    self.slowest = max(self.slowest, latency)
                    self.statuses[status] += 1
                    if failure is not None:
                        self.failures.append(failure)

    def summary(self) -> str:
        rate = sum(self.statuses.values()) / self.elapsed if self.elapsed else 0.0
        return (
            f"{sum(self.statuses.values())} requests in {self.elapsed:.1f} s ({rate:.0f}/s), "
            f"{self.ok} ok, {len(self.failures)} failed, slowest {self.slowest * 1000:.0f} ms"
        )


@contextmanager
def load(url: str, **kwargs: Any) -> Iterator[Load]:
    running = Load(url, **kwargs).start()
    try:
        yield running
    finally:
        running.stop()


@dataclass
class TrafficWatch:
    """Polls the endpoint (the document ``get -o json`` prints) every 50 ms: keeps every distinct
    traffic split, and the fewest ready replicas taking traffic it ever saw (0 would be an outage that
    held requests hid)."""

    plane: ControlPlane
    splits: list[dict[int, int]] = field(default_factory=list)
    seen_at: list[float] = field(default_factory=list)
    min_ready: int | None = None
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> TrafficWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    doc = client.get(f"{self.plane.url}{API}/iris").json()
                    current, ready = split(doc), doc["status"]["readyReplicas"]
                except Exception:  # a missed poll is just a missed sample
                    current = None
                else:
                    self.polls += 1
                    self.min_ready = ready if self.min_ready is None else min(self.min_ready, ready)
                if current is not None and (not self.splits or self.splits[-1] != current):
                    self.splits.append(current)
                    self.seen_at.append(time.monotonic())
                self._stop.wait(0.05)

    def timeline(self) -> str:
        """Each split with how long it was seen (the last one until now)."""
        ends = [*self.seen_at[1:], time.monotonic()]
        return ", ".join(
            f"{s} {end - t:.1f} s" for s, t, end in zip(self.splits, self.seen_at, ends, strict=True)
        )


def expected_prediction(model: Path) -> list[int]:
    predicted: list[int] = joblib.load(model).predict(np.array(ROWS)).tolist()
    return predicted


# -- rollouts under load ---------------------------------------------------------------------------


def test_rolling_update_under_load_fails_no_request(
    control_plane: ControlPlane, iris_model: Path, tmp_path: Path
) -> None:
    path = manifest(tmp_path / "iris.yaml", iris_model)
    control_plane.cli("apply", "-f", str(path), "--wait")
    url = endpoint(control_plane)["status"]["url"]
    expected = expected_prediction(iris_model)
    first = model_server_pids(control_plane)

    second_model = tmp_path / "iris-v2.joblib"
    shutil.copy(iris_model, second_model)
    manifest(path, second_model)
    with load(url, expected=expected) as running, TrafficWatch(control_plane) as watch:
        wait_for(lambda: running.ok >= 20, timeout=15, what="load flowing before the update")
        before, started = running.ok, time.monotonic()
        assert "configured" in control_plane.cli("apply", "-f", str(path), "--wait").stdout
        status = control_plane.cli("rollout", "status", "iris", "--timeout", "60")
        assert "successfully rolled out (revision 2)" in status.stdout
        wait_for(lambda: not first & model_server_pids(control_plane), timeout=30, what="revision 1 stopped")
        took = time.monotonic() - started
        during = running.ok - before
        wait_for(lambda: running.ok >= before + during + 20, timeout=15, what="load served by revision 2")
    print(f"rolling update: {running.summary()}; {during} answered during the {took:.1f} s rollout")
    print(f"rolling update: splits seen {watch.timeline()}; fewest ready replicas {watch.min_ready}")

    assert running.failures == [], running.failures[:5]
    assert watch.polls >= 20 and watch.min_ready == 1, "a ready replica took traffic at every moment"
    assert watch.splits[0] == {1: 100} and watch.splits[-1] == {2: 100}, watch.splits
    assert during >= 20, f"only {during} requests were answered during the rollout"
    doc = endpoint_json(control_plane)
    assert (doc["status"]["latestRevision"], doc["status"]["stableRevision"]) == (2, 2)
    assert split(doc) == {2: 100}


def test_canary_under_load_shows_its_split_and_promotes(
    control_plane: ControlPlane, iris_model: Path, tmp_path: Path
) -> None:
    rollout = {
        "strategy": "canary",
        "steps": [{"weight": 30, "pauseSeconds": 1}, {"weight": 60, "pauseSeconds": 10}],
        "analysis": {"minRequests": 5, "maxErrorRate": 0.0},
    }
    path = manifest(tmp_path / "iris.yaml", iris_model, rollout=rollout)
    control_plane.cli("apply", "-f", str(path), "--wait")
    url = endpoint(control_plane)["status"]["url"]

    second_model = tmp_path / "iris-canary.joblib"
    shutil.copy(iris_model, second_model)
    manifest(path, second_model, rollout=rollout)
    with load(url, expected=expected_prediction(iris_model)) as running, TrafficWatch(control_plane) as watch:
        wait_for(lambda: running.ok >= 20, timeout=15, what="load flowing before the canary")
        before, started = running.ok, time.monotonic()
        control_plane.cli("apply", "-f", str(path))
        wait_for(lambda: {1: 70, 2: 30} in watch.splits, timeout=30, what="the first canary step")
        # Hold the canary mid-way (step 1's pause is 1 s, step 2's 10 s: room for a CLI start on a loaded
        # machine) to read the split with the CLI.
        control_plane.cli("rollout", "pause", "iris")
        wait_for(
            lambda: endpoint(control_plane)["status"]["rolloutPhase"] == "Paused", timeout=15, what="Paused"
        )
        paused = endpoint_json(control_plane)
        described = control_plane.cli("describe", "me", "iris").stdout
        control_plane.cli("rollout", "resume", "iris")
        status = control_plane.cli("rollout", "status", "iris", "--timeout", "60")
        during, took = running.ok - before, time.monotonic() - started
    print(f"canary: {running.summary()}; {during} answered during the {took:.1f} s rollout")
    print(f"canary: splits seen {watch.timeline()}; paused at {split(paused)}")

    assert running.failures == [], running.failures[:5]
    assert during >= 20, f"only {during} requests were answered during the canary"
    assert "successfully rolled out (revision 2)" in status.stdout
    # While in progress, `get -o json` and `describe` show two revisions sharing traffic.
    assert split(paused) in ({1: 70, 2: 30}, {1: 40, 2: 60}), paused["status"]["traffic"]
    assert "Paused (canary, step" in described, described
    for revision, percent in split(paused).items():
        assert re.search(rf"^\s*{revision}\s+{percent}%", described, re.MULTILINE), described
    # The watcher saw every step of the split, in order, ending on the new revision alone.
    weighted = [s for s in watch.splits if sum(1 for p in s.values() if p) == 2]
    assert weighted[:2] == [{1: 70, 2: 30}, {1: 40, 2: 60}], watch.splits
    assert watch.splits[-1] == {2: 100}
    doc = endpoint_json(control_plane)
    assert split(doc) == {2: 100} and doc["status"]["stableRevision"] == 2
    described = control_plane.cli("describe", "me", "iris").stdout
    for fragment in ("CanaryStep", "CanaryPromoted", "RolloutCompleted", "Completed (canary"):
        assert fragment in described, described


def test_canary_to_a_broken_model_rolls_back_by_itself_then_undo_completes(
    control_plane: ControlPlane, iris_model: Path, tmp_path: Path
) -> None:
    rollout = {
        "strategy": "canary",
        "steps": [{"weight": 50, "pauseSeconds": 1}],
        "analysis": {"minRequests": 5},
    }
    path = manifest(tmp_path / "iris.yaml", iris_model, rollout=rollout)
    control_plane.cli("apply", "-f", str(path), "--wait")
    url = endpoint(control_plane)["status"]["url"]

    broken = tmp_path / "not-a-model.joblib"
    joblib.dump({"weights": [1, 2, 3]}, broken)
    manifest(path, broken, rollout=rollout)
    with load(url, expected=expected_prediction(iris_model)) as running, TrafficWatch(control_plane) as watch:
        wait_for(lambda: running.ok >= 20, timeout=15, what="load flowing before the canary")
        before, started = running.ok, time.monotonic()
        applied = control_plane.cli("apply", "-f", str(path), "--wait", "--timeout", "60", check=False)
        waited = time.monotonic() - started
        failed = control_plane.cli("rollout", "status", "iris", "--timeout", "60", check=False)
        during, took = running.ok - before, time.monotonic() - started
        doc = endpoint_json(control_plane)
    print(f"rollback: {running.summary()}; {during} answered during the {took:.1f} s failed canary")
    print(f"rollback: apply --wait reported it after {waited:.1f} s")
    print(f"rollback: splits seen {watch.timeline()}; fewest ready replicas {watch.min_ready}")

    # `apply --wait` gives up as soon as the rollout is rolled back (it is final for this spec)...
    assert applied.returncode == 1 and "RolledBack" in applied.stderr, applied
    assert waited < 30, f"apply --wait took {waited:.0f} s to report the rollback"
    # ...and `rollout status` exits 1 with the reason.
    assert failed.returncode == 1, failed
    assert watch.min_ready == 1 and all(s.get(2, 0) == 0 for s in watch.splits), watch.splits
    assert "rollout of revision 2 failed" in failed.stderr and "ModelLoadFailed" in failed.stderr, (
        failed.stderr
    )
    assert running.failures == [], running.failures[:5]
    assert during >= 10, f"only {during} requests were answered during the failed canary"
    assert doc["status"]["rolloutPhase"] == "RolledBack"
    assert (doc["status"]["stableRevision"], doc["status"]["latestRevision"]) == (1, 2)
    assert split(doc) == {1: 100}
    ready = next(c for c in doc["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RolledBack")
    assert "not-a-model.joblib" in ready["message"] or "predict" in ready["message"], ready
    warnings = [e for e in events(control_plane) if e["reason"] == "RolledBack"]
    assert warnings and warnings[0]["type"] == "Warning" and "keeps 100%" in warnings[0]["message"]
    wait_for(
        lambda: {r["revision"] for r in replicas(control_plane)} == {1},
        timeout=15,
        what="the broken revision's replica removed",
    )

    assert "rolled back to revision 1" in control_plane.cli("rollout", "undo", "iris").stdout
    status = control_plane.cli("rollout", "status", "iris", "--timeout", "60")
    assert "successfully rolled out (revision 1)" in status.stdout
    doc = endpoint_json(control_plane)
    assert doc["spec"]["model"]["uri"] == str(iris_model)
    assert (doc["status"]["latestRevision"], doc["status"]["rolloutPhase"], split(doc)) == (
        1,
        "Completed",
        {1: 100},
    )
    assert infer(url).status_code == 200


# -- autoscaling -----------------------------------------------------------------------------------


def test_scale_to_zero_and_back_answers_the_held_request(
    control_plane: ControlPlane, iris_model: Path, tmp_path: Path
) -> None:
    autoscaling = {
        "minReplicas": 0,
        "maxReplicas": 1,
        "stableWindowSeconds": 6,
        "scaleToZeroGracePeriodSeconds": 0,
    }
    path = manifest(tmp_path / "iris.yaml", iris_model, autoscaling=autoscaling)
    control_plane.cli("apply", "-f", str(path), "--wait")
    url = endpoint(control_plane)["status"]["url"]
    expected = expected_prediction(iris_model)

    # Some traffic (the first request may itself be a cold start), then none.
    for _ in range(5):
        response = infer(url)
        assert response.status_code == 200, response.text
    assert model_server_pids(control_plane)
    idle_since = time.monotonic()
    wait_for(lambda: not model_server_pids(control_plane), timeout=30, what="scaled to zero")
    print(f"scale to zero: replicas gone {time.monotonic() - idle_since:.1f} s after the last request")

    row = next(
        line for line in control_plane.cli("get", "me", "-o", "wide").stdout.splitlines() if "iris" in line
    )
    assert row.split()[1:3] == ["True", "0/0"], row
    assert "ScaledToZero" in row, row
    doc = endpoint(control_plane)
    assert (doc["status"]["replicas"], doc["status"]["readyReplicas"]) == (0, 0)

    started = time.monotonic()
    response = infer(url)
    first_response = time.monotonic() - started
    print(f"scale from zero: time to first response {first_response:.2f} s")
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == expected
    assert first_response < 15, f"the held request took {first_response:.1f} s"
    assert len(model_server_pids(control_plane)) == 1
    reasons = [e["message"] for e in events(control_plane) if e["reason"] == "ScaledUp"]
    assert any("scale from zero" in m for m in reasons), reasons


def test_burst_scales_up_in_panic_and_back_down(control_plane: ControlPlane, tmp_path: Path) -> None:
    model = tmp_path / "slow_model.py"
    model.write_text(SLOW_MODEL)
    autoscaling = {"minReplicas": 1, "maxReplicas": 3, "target": 1, "stableWindowSeconds": 6}
    path = manifest(tmp_path / "slow.yaml", model, autoscaling=autoscaling)
    control_plane.cli("apply", "-f", str(path), "--wait")
    url = endpoint(control_plane)["status"]["url"]
    assert len(model_server_pids(control_plane)) == 1

    with load(url, concurrency=8) as running:
        started = time.monotonic()
        wait_for(
            lambda: endpoint(control_plane)["status"]["desiredReplicas"] > 1, timeout=20, what="scale-up"
        )
        decided = time.monotonic() - started
        wait_for(
            lambda: endpoint(control_plane)["status"]["readyReplicas"] > 1,
            timeout=30,
            what="more ready replicas",
        )
        scaled = time.monotonic() - started
        # Keep the burst going a little with the new replicas taking their share.
        served = running.ok
        wait_for(lambda: running.ok >= served + 50, timeout=20, what="load on the scaled endpoint")
    print(
        f"panic: scale-up decided after {decided:.1f} s, >1 ready after {scaled:.1f} s; {running.summary()}"
    )
    assert running.failures == [], running.failures[:5]
    history = events(control_plane)
    for event in history:
        print(f"  event {event['reason']} x{event['count']}: {event['message']}")
    scaled_up = [e["message"] for e in history if e["reason"] == "ScaledUp"]
    # The first scaling event is the burst's (none at creation), decided in panic mode, with its numbers.
    assert scaled_up and scaled_up[0].startswith("panic: concurrency"), scaled_up
    described = control_plane.cli("describe", "me", "iris").stdout
    assert "ScaledUp" in described

    stopped = time.monotonic()
    wait_for(lambda: len(model_server_pids(control_plane)) == 1, timeout=40, what="scaled back down to 1")
    print(f"panic: back to 1 replica {time.monotonic() - stopped:.1f} s after the burst")
    scaled_down = wait_for(
        lambda: [e["message"] for e in events(control_plane) if e["reason"] == "ScaledDown"],
        timeout=10,
        what="a ScaledDown event",
    )
    print(f"  ScaledDown: {scaled_down[0]}")


def test_scale_down_under_load_drains_without_failures(
    control_plane: ControlPlane, iris_model: Path, tmp_path: Path
) -> None:
    path = manifest(tmp_path / "iris.yaml", iris_model, autoscaling={"minReplicas": 2, "maxReplicas": 2})
    control_plane.cli("apply", "-f", str(path), "--wait")
    url = endpoint(control_plane)["status"]["url"]
    assert len(model_server_pids(control_plane)) == 2

    manifest(path, iris_model, autoscaling={"minReplicas": 1, "maxReplicas": 1})
    with load(url, expected=expected_prediction(iris_model)) as running, TrafficWatch(control_plane) as watch:
        wait_for(lambda: running.ok >= 20, timeout=15, what="load flowing on two replicas")
        before = running.ok
        control_plane.cli("apply", "-f", str(path), "--wait")
        wait_for(lambda: len(model_server_pids(control_plane)) == 1, timeout=40, what="one replica stopped")
        during = running.ok - before
        wait_for(lambda: running.ok >= before + during + 20, timeout=15, what="load on one replica")
    print(f"scale-down drain: {running.summary()}; {during} answered during the scale-down")
    assert running.failures == [], running.failures[:5]
    assert watch.polls >= 10 and watch.min_ready == 1, watch.min_ready
    assert during >= 10
    doc = endpoint(control_plane)
    assert (doc["status"]["desiredReplicas"], doc["status"]["readyReplicas"]) == (1, 1)
