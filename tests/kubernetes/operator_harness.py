"""Run the Pilothouse operator in-process against the API emulator (or a real cluster), for tests.

``RunningOperator`` runs ``operate`` in a thread with its own event loop, as ``python -m
pilothouse.operator`` would run it, and stops it through kopf's ``stop_flag``. ``wait_for`` polls a
condition with a deadline (the emulator has no events to await from the test thread).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from kubernetes import client as k8s
from pilothouse.operator.config import OperatorConfig
from pilothouse.operator.host import ControllerHost
from pilothouse.operator.run import operate

if TYPE_CHECKING:
    from emulator import KubernetesApiEmulator

T = TypeVar("T")
SYSTEM_NAMESPACE = "pilothouse-system"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class RunningOperator:
    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        resync_seconds: float = 2.0,
        peering_name: str | None = None,
        priority: int = 0,
    ) -> None:
        config = OperatorConfig(system_namespace=SYSTEM_NAMESPACE, resync_seconds=resync_seconds)
        self.host = ControllerHost(api_client, config)
        self.api_client = api_client
        self.peering_name = peering_name
        self.priority = priority
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="pilothouse-operator-test", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(
                operate(
                    self.api_client,
                    host=self.host,
                    peering_name=self.peering_name,
                    priority=self.priority,
                    stop_flag=self.stop_flag,
                    ready_flag=self.ready_flag,
                )
            )
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> RunningOperator:
        self.thread.start()
        assert self.ready_flag.wait(15), f"operator did not start: {self.error!r}"
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_flag.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "operator did not stop"


def wait_for(condition: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # not there yet (404) or mid-change
            last = exc
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


def load_documents(*paths: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@dataclass
class KubeTarget:
    """Where a test's cluster calls go: the emulator, or the real cluster of ``$PILOTHOUSE_TEST_KUBECONFIG``."""

    kubeconfig: Path
    api_client: k8s.ApiClient
    emulator: KubernetesApiEmulator | None
    """``None`` on a real cluster: no status helpers (real controllers, or none, write the statuses)."""
