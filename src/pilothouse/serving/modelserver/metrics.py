"""Prometheus metrics for one served model, on a private registry.

A private ``CollectorRegistry`` keeps several app instances (tests) from colliding and keeps the
exposition to what this process is about. Labelled children are resolved once and cached, so
recording a request is a dict lookup plus an ``inc``/``observe``.

``NoMetrics`` is the server started with ``--no-metrics``: it records nothing and ``/metrics`` is not
served (404). Metrics are on by default and the platform never switches them off; the option exists
so their cost can be measured (``benchmarks/observability/overhead.py``) and for a server run alone
that nothing scrapes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ModelMetrics:
    def __init__(self, model_name: str, *, process_metrics: bool = True):
        self.registry = CollectorRegistry(auto_describe=True)
        self.model_name = model_name
        self.requests = Counter(
            "pilothouse_model_requests",
            "Inference requests for this model, by HTTP status code.",
            ["model", "code"],
            registry=self.registry,
        )
        self.errors = Counter(
            "pilothouse_model_errors",
            "Failed requests by kind: bad_request, not_found, too_large, predict.",
            ["model", "kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pilothouse_model_request_duration_seconds",
            "Inference request latency inside the server (body read to response sent).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.load_duration = Gauge(
            "pilothouse_model_load_duration_seconds",
            "Seconds spent loading the model at start-up.",
            ["model"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "pilothouse_model_batch_size",
            "Rows per predict call with dynamic batching on (not observed when batching is off).",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        #: ``observe(rows)`` for the batch size histogram; handed to the batcher.
        self.observe_batch_size = self.batch_size.labels(model_name).observe
        if process_metrics:
            ProcessCollector(registry=self.registry)
        self._observe = self.latency.labels(model_name).observe
        self._by_code: dict[int, Counter] = {}
        self._by_kind: dict[str, Counter] = {}

    def record(self, status: int, seconds: float) -> None:
        child = self._by_code.get(status)
        if child is None:
            child = self._by_code[status] = self.requests.labels(self.model_name, str(status))
        child.inc()
        self._observe(seconds)

    def error(self, kind: str) -> None:
        child = self._by_kind.get(kind)
        if child is None:
            child = self._by_kind[kind] = self.errors.labels(self.model_name, kind)
        child.inc()

    def set_load_duration(self, seconds: float) -> None:
        self.load_duration.labels(self.model_name).set(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class NoMetrics:
    """Metrics off: the same recording calls as ``ModelMetrics``, each doing nothing; no registry."""

    def record(self, status: int, seconds: float) -> None:
        pass

    def error(self, kind: str) -> None:
        pass

    def observe_batch_size(self, rows: float) -> None:
        pass

    def set_load_duration(self, seconds: float) -> None:
        pass
