"""The operator's settings: one frozen object, read from the environment by a function (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from pilothouse.runtime.kubernetes.builders.gateway import GATEWAY_NAME


@dataclass(frozen=True)
class OperatorConfig:
    system_namespace: str = "pilothouse-system"
    gateway_url: str = ""
    """Base URL users call (``status.url`` = ``<gateway_url>/<namespace>/<name>``); default: the gateway Service."""
    resync_seconds: float = 10.0
    """Every object is reconciled at least this often (kopf timer), as the embedded manager resyncs."""
    workers: int = 2
    """Threads running follow-up reconciles (runtime changes, requeues, the queue pass)."""
    scheduling_policy: str = "fair"

    @property
    def public_url(self) -> str:
        return self.gateway_url or f"http://{GATEWAY_NAME}.{self.system_namespace}.svc.cluster.local"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        return cls(
            system_namespace=env.get("PILOTHOUSE_SYSTEM_NAMESPACE", cls.system_namespace),
            gateway_url=env.get("PILOTHOUSE_GATEWAY_URL", ""),
            resync_seconds=float(env.get("PILOTHOUSE_RESYNC_SECONDS", cls.resync_seconds)),
            scheduling_policy=env.get("PILOTHOUSE_SCHEDULING_POLICY", cls.scheduling_policy),
        )
