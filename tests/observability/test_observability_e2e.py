"""Observability of a real ``pilothouse up``: every ``/metrics`` by Prometheus' conventions, one trace
through gateway and model server, JSON logs with request and trace ids, ``top``, and the monitoring
assets checked against what the processes really export.

One control plane serves the whole module (module-scoped, ~5 s to an endpoint and a running job). It
runs with ``--log-format json`` and ``PILOTHOUSE_TRACE_FILE`` set: the trace-file exporter writes every
finished span, of the gateway (in ``up``) and of the replica (which inherits the variable), as one JSON
line to one file, so the test reads the trace back without a collector.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from observability.promql import exported, metric_names
from pilothouse.api.registry import resolve_kind
from pilothouse.client import PilothouseClient
from support import ControlPlane, kill_tree_of_data_dir, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
BODY = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]}


@dataclass
class Running:
    plane: ControlPlane
    client: PilothouseClient
    url: str
    replica_url: str
    trace_file: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("observability")
    trace_file = root / "spans.jsonl"
    plane = ControlPlane(
        root / "data", extra_args=["--log-format", "json", "--accelerators", "nvidia.com/gpu=2"]
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PILOTHOUSE_TRACE_FILE", str(trace_file))
        env.delenv("PILOTHOUSE_OTLP_ENDPOINT", raising=False)
        plane.start()
    client = PilothouseClient(plane.url)
    try:
        docs = [
            {"apiVersion": "pilothouse.dev/v1alpha1", "kind": "Team", "metadata": {"name": "ml"},
             "spec": {"quotas": {"nvidia.com/gpu": {"nominal": 2}}}},
            {"apiVersion": "pilothouse.dev/v1alpha1", "kind": "ModelEndpoint",
             "metadata": {"name": "iris", "namespace": "ml"},
             "spec": {"model": {"uri": str(iris_model), "format": "sklearn"}}},
            {"apiVersion": "pilothouse.dev/v1alpha1", "kind": "Job", "metadata": {"name": "train", "namespace": "ml"},
             "spec": {"command": ["python", "-c", "import time; time.sleep(120)"],
                      "resources": {"accelerators": {"nvidia.com/gpu": 1}}, "preemptionGracePeriodSeconds": 1}},
        ]  # fmt: skip
        manifest = root / "all.yaml"
        manifest.write_text(yaml.safe_dump_all(docs))
        plane.cli("apply", "-f", str(manifest), "--wait", "--timeout", "60")
        info = resolve_kind("modelendpoint")

        def ready() -> str | None:
            obj = client.get(info, "ml", "iris")
            return obj.status.url if obj.status.readyReplicas else None  # type: ignore[union-attr]

        url = wait_for(ready, timeout=60, what="iris ready")
        replicas = client.replicas(info, "ml", "iris")
        wait_for(
            lambda: client.get(resolve_kind("job"), "ml", "train").status.phase == "Running",  # type: ignore[union-attr]
            timeout=60,
            what="job running",
        )
        yield Running(plane, client, url, replicas[0]["url"], trace_file)
    finally:
        client.close()
        plane.stop()
        kill_tree_of_data_dir(root)


def infer(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    response = httpx.post(f"{url}/v2/models/iris/infer", json=BODY, headers=headers or {}, timeout=10)
    assert response.status_code == 200, response.text
    return response


def scrapes(running: Running) -> dict[str, str]:
    for _ in range(5):
        infer(running.url)
    gateway = running.url.rsplit("/", 2)[0]
    out = {}
    for name, base in (
        ("control plane", running.plane.url),
        ("gateway", gateway),
        ("model server", running.replica_url),
    ):
        response = httpx.get(f"{base}/metrics", timeout=10)
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-type"].startswith("text/plain"), name
        out[name] = response.text
    return out


# -- naming conventions --------------------------------------------------------------------------------

SNAKE = re.compile(r"[a-z][a-z0-9_]*")
TIMING = re.compile(r"(^|_)(duration|latency|time|wait|elapsed|age|uptime)(_|$)")
SIZE = re.compile(r"(^|_)(memory|size|bytes)(_|$)")
UNBOUNDED_LABELS = {
    "id",
    "uid",
    "url",
    "uri",
    "replica",
    "pid",
    "pod",
    "request_id",
    "trace_id",
    "span_id",
    "path",
    "ip",
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
HEX_ID = re.compile(r"\b[0-9a-f]{16,}\b", re.I)
URLISH = re.compile(r"://|^/|\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b|:\d{2,5}$")
#: Families we do not own: the client library's standard process/platform collectors.
FOREIGN_PREFIXES = ("process_", "python_")
#: Unit-less on purpose, with the reason. Rows per predict call are a count, not a size in bytes.
ALLOWED = {"pilothouse_model_batch_size": "rows per batch (a count): suggest renaming to ..._rows"}


def naming_problems(exposition: str) -> list[str]:
    problems = []
    families = list(text_string_to_metric_families(exposition))
    names = {f.name for f in families}
    for family in families:
        name = family.name
        if name.startswith(FOREIGN_PREFIXES):
            continue
        if name.endswith("_created") and name.removesuffix("_created") in names:
            continue  # the text format's creation timestamp of a counter or histogram, not a metric
        if not SNAKE.fullmatch(name):
            problems.append(f"{name}: not snake_case")
        if not name.startswith("pilothouse_"):
            problems.append(f"{name}: no pilothouse_ prefix")
        if family.type == "counter":
            bad = [s.name for s in family.samples if not s.name.endswith(("_total", "_created"))]
            if bad:
                problems.append(f"{name}: counter samples without _total: {sorted(set(bad))}")
        elif name.endswith("_total"):
            problems.append(f"{name}: a {family.type} must not end in _total")
        if name in ALLOWED:
            continue
        if TIMING.search(name) and not name.endswith("_seconds"):
            problems.append(f"{name}: a timing without the _seconds unit")
        if SIZE.search(name) and not name.endswith("_bytes"):
            problems.append(f"{name}: a size without the _bytes unit")
        if re.search(r"(_ms|_milliseconds|_us|_kb|_mb|_gb|_percent)$", name):
            problems.append(f"{name}: not a base unit")
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label == "le" or label == "quantile":
                    continue
                if label in UNBOUNDED_LABELS:
                    problems.append(f"{name}: unbounded label name {label!r}")
                if UUID.search(value) or HEX_ID.search(value) or URLISH.search(value) or len(value) > 64:
                    problems.append(f"{name}: label {label}={value!r} looks like an id or URL")
    return problems


def test_every_metrics_endpoint_follows_prometheus_naming(running: Running) -> None:
    texts = scrapes(running)
    for source, text in texts.items():
        assert naming_problems(text) == [], source
    names = exported(texts.values())
    for expected in (
        "pilothouse_controller_reconcile_total",
        "pilothouse_controller_reconcile_errors_total",
        "pilothouse_controller_reconcile_duration_seconds_bucket",
        "pilothouse_controller_workqueue_depth",
        "pilothouse_job_admission_wait_seconds_count",
        "pilothouse_accelerator_devices",
        "pilothouse_endpoints",
        "pilothouse_jobs",
        "pilothouse_gateway_requests_total",
        "pilothouse_model_requests_total",
    ):
        assert expected in names, expected
    families = {f.name: f for f in text_string_to_metric_families(texts["control plane"])}
    devices = {
        (s.labels["resource"], s.labels["state"]): s.value
        for s in families["pilothouse_accelerator_devices"].samples
    }
    assert devices == {("nvidia.com/gpu", "allocated"): 1.0, ("nvidia.com/gpu", "free"): 1.0}
    jobs = {
        s.labels["phase"]: s.value
        for s in families["pilothouse_jobs"].samples
        if s.labels["namespace"] == "ml"
    }
    assert jobs["Running"] == 1.0 and jobs["Pending"] == 0.0
    endpoints = {s.labels["phase"]: s.value for s in families["pilothouse_endpoints"].samples}
    assert endpoints["Ready"] == 1.0
    waits = [
        s for s in families["pilothouse_job_admission_wait_seconds"].samples if s.name.endswith("_count")
    ]
    assert [(s.labels["namespace"], s.value) for s in waits] == [("ml", 1.0)]
    reconciles = {
        (s.labels["kind"], s.labels["result"]): s.value
        for s in families["pilothouse_controller_reconcile"].samples
        if s.name.endswith("_total")
    }
    assert reconciles[("ModelEndpoint", "success")] + reconciles[("ModelEndpoint", "requeue")] >= 1
    assert not any("GPU" in n for n in families)  # no NVML here: no GPU telemetry series at all
    assert "pilothouse_gpu_utilization_ratio" not in families


def test_dashboard_and_alert_rules_use_only_exported_metrics(running: Running) -> None:
    from observability.fake_nvml import (
        gpu_exposition,
    )  # GPU series exist only with NVML: scrape a collector with a fake

    names = exported([*scrapes(running).values(), gpu_exposition()])
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    rule = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    exprs += [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    names |= {r["record"] for group in rule["spec"]["groups"] for r in group["rules"] if "record" in r}
    assert len(exprs) >= 10
    for expr in exprs:
        used = metric_names(str(expr))
        assert used, expr
        assert used <= names, f"{sorted(used - names)} in {expr!r} are not exported"


# -- tracing ---------------------------------------------------------------------------------------------


def spans(trace_file: Path) -> list[dict[str, object]]:
    if not trace_file.exists():
        return []
    return [json.loads(line) for line in trace_file.read_text().splitlines() if line.strip()]


def test_one_request_is_one_trace_through_gateway_and_model_server(running: Running) -> None:
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    infer(running.url, {"traceparent": f"00-{trace_id}-{caller_span}-01"})

    def both() -> list[dict[str, object]]:
        found = [s for s in spans(running.trace_file) if s["trace_id"] == trace_id]
        return found if len(found) == 2 else []

    found = {str(s["service"]): s for s in wait_for(both, timeout=10, what="two spans of the trace")}
    gateway, server = found["pilothouse-gateway"], found["pilothouse-modelserver"]
    assert gateway["parent_span_id"] == caller_span
    assert server["parent_span_id"] == gateway["span_id"]
    assert gateway["name"] == "gateway ml/iris" and server["name"] == "infer iris"
    assert gateway["attributes"]["http.response.status_code"] == 200  # type: ignore[index]
    assert server["kind"] == gateway["kind"] == "SERVER"

    # Without a traceparent the gateway starts the trace; the model server still joins it.
    before = {s["span_id"] for s in spans(running.trace_file)}
    infer(running.url)

    def new_pair() -> list[dict[str, object]]:
        new = [s for s in spans(running.trace_file) if s["span_id"] not in before]
        return new if len(new) == 2 else []

    first, second = wait_for(new_pair, timeout=10, what="spans of an untraced request")
    assert first["trace_id"] == second["trace_id"]
    roots = [s for s in (first, second) if s["parent_span_id"] is None]
    assert [r["service"] for r in roots] == ["pilothouse-gateway"]


# -- logs and top ------------------------------------------------------------------------------------------


def test_json_logs_carry_service_and_request_ids(running: Running) -> None:
    response = httpx.get(f"{running.plane.url}/version", headers={"x-request-id": "req-42"}, timeout=5)
    assert response.headers["x-request-id"] == "req-42"
    assert httpx.get(f"{running.plane.url}/version", timeout=5).headers["x-request-id"]
    lines = [line for line in running.plane.log().splitlines() if line.startswith("{")]
    assert lines, running.plane.log()
    docs = [json.loads(line) for line in lines]
    assert {d["service"] for d in docs} == {"pilothouse-controlplane"}
    assert all({"time", "level", "logger", "message"} <= d.keys() for d in docs)
    replica_log = "\n".join(running.client.logs(resolve_kind("modelendpoint"), "ml", "iris"))
    server_docs = [json.loads(line) for line in replica_log.splitlines() if line.startswith("{")]
    assert any("loaded sklearn model" in d["message"] for d in server_docs), replica_log
    assert all(d["service"] == "pilothouse-modelserver" and d["replica"] for d in server_docs)
    assert not any("/infer" in d["message"] for d in server_docs)  # no per-request lines


def test_top_once_shows_endpoints_jobs_and_gpus(running: Running) -> None:
    for _ in range(20):
        infer(running.url)
    doc = running.client.top("endpoints", "ml")
    (item,) = doc["items"]
    assert item["name"] == "iris" and item["readyReplicas"] == 1 and item["phase"] == "Ready"
    wait_for(
        lambda: running.client.top("endpoints", "ml")["items"][0]["requestsPerSecond"] > 0,
        timeout=5,
        what="a complete second of traffic",
    )
    assert running.client.top("endpoints", "ml")["items"][0]["p99Seconds"] > 0

    table = running.plane.cli("top", "endpoints", "--once").stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:6] == ["NAMESPACE", "NAME", "PHASE", "REPLICAS", "RPS", "P99"]
    assert row.split()[:4] == ["ml", "iris", "Ready", "1/1"]

    jobs = running.plane.cli("top", "jobs", "--once", "-n", "ml").stdout
    assert re.search(r"ml\s+train\s+Running\s+1\s+1\s+0\s+\d+s", jobs), jobs

    gpus = running.plane.cli("top", "gpus", "--once").stdout.splitlines()
    assert gpus[0].split() == ["RESOURCE", "DEVICE", "STATE", "OWNER", "UTIL", "MEMORY", "POWER"]
    assert gpus[1].split()[:5] == ["nvidia.com/gpu", "0", "allocated", "Job", "ml/train"]
    assert gpus[2].split()[:4] == ["nvidia.com/gpu", "1", "free", "-"]
