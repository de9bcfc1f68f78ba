"""What the routers need from the rest of the control plane, gathered in one object.

The app is built from a ``ControlPlaneServices`` so tests can assemble a server around any Store and
Runtime (a fake runtime, a temporary SQL store) without patching module globals.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilothouse.runtime.protocol import JobRuntime, Runtime
from pilothouse.store.protocol import Store


@dataclass(frozen=True)
class ControlPlaneServices:
    store: Store
    runtime: Runtime
    gateway_url: str
    """Base URL of the data-plane gateway; an endpoint's URL is ``{gateway_url}/{namespace}/{name}``."""
    version: str
    jobs: JobRuntime | None = None
    """Where jobs run (None: this control plane runs no jobs)."""
