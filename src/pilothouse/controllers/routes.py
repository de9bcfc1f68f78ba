"""The seam between control plane and data plane: controllers publish which replicas serve an endpoint.

The embedded gateway's route table implements this in-process; on Kubernetes, Services play the part.
Controllers depend on this protocol only, never on the gateway itself.
"""

from __future__ import annotations

from typing import Protocol


class RoutePublisher(Protocol):
    def publish(self, namespace: str, name: str, upstreams: list[str]) -> None:
        """Route the endpoint's URL to exactly these replica base URLs (an empty list: known, none ready)."""
        ...

    def withdraw(self, namespace: str, name: str) -> None:
        """Forget the endpoint: its URL answers 404 again."""
        ...
