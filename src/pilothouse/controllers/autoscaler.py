"""The endpoint controller's ``ReplicaDecider``: the autoscaler core fed with the gateway's samples.

The core (``pilothouse.autoscaling``) is pure; this adapter keeps its state per endpoint between
reconciles (in memory: a restarted control plane starts from the current replica count, which only
delays a scale-down by one stable window) and remembers the last decision so the reconciler can record
it as an event with its inputs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pilothouse.api.modelendpoint import ModelEndpoint
from pilothouse.autoscaling import AutoscalerState, Decision, MetricSample, config_from_spec, decide
from pilothouse.controllers.traffic import TrafficSource
from pilothouse.runtime.protocol import ReplicaState

SAMPLE_HISTORY_SECONDS = 3600


@dataclass
class _Memory:
    state: AutoscalerState
    last: Decision | None = None


class Autoscaler:
    def __init__(self, traffic: TrafficSource) -> None:
        self.traffic = traffic
        self._memory: dict[str, _Memory] = {}
        self._lock = threading.Lock()

    def desired(self, endpoint: ModelEndpoint, observed: list[ReplicaState], now: float) -> int:
        meta = endpoint.metadata
        assert meta.uid is not None
        config = config_from_spec(endpoint.spec.autoscaling)
        window = min(SAMPLE_HISTORY_SECONDS, int(config.stable_window) + 2)
        # The gateway stamps a sample with the start of its second; the core expects the end of the
        # period it averages. Unshifted, every window lags a second and a 1 s panic window never holds
        # a sample (panic mode could not engage for stableWindowSeconds < 20).
        samples = [
            MetricSample(t=s.t + 1.0, concurrency=s.concurrency, rps=float(s.rps))
            for s in self.traffic.samples(meta.namespace, meta.name, window)
        ]
        latest = endpoint.status.latestRevision
        ready = sum(1 for r in observed if r.ready and (latest is None or r.revision == latest))
        current = endpoint.status.desiredReplicas if endpoint.status.observedGeneration else len(observed)
        with self._lock:
            memory = self._memory.setdefault(meta.uid, _Memory(AutoscalerState()))
        decision = decide(
            config,
            samples,
            ready=ready,
            current=current,
            state=memory.state,
            now=now,
            held_requests=self.traffic.held(meta.namespace, meta.name),
        )
        with self._lock:
            memory.state, memory.last = decision.state, decision
        return decision.desired

    def explain(self, uid: str) -> str | None:
        with self._lock:
            memory = self._memory.get(uid)
            return memory.last.reason if memory and memory.last else None

    def forget(self, uid: str) -> None:
        with self._lock:
            self._memory.pop(uid, None)
