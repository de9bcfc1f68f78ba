"""Run the operator: build the host, a kopf registry with our handlers, and hand both to ``kopf.operator``.

``operate`` is a coroutine so tests can run one or two operators in threads with their own event loops
(and stop them with ``stop_flag``); ``__main__`` runs it with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import kopf

from kubernetes import client
from pilothouse.operator.config import OperatorConfig
from pilothouse.operator.handlers import register
from pilothouse.operator.host import ControllerHost
from pilothouse.operator.settings import connection_info, operator_settings


def build_registry(host: ControllerHost, connection: kopf.ConnectionInfo) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection

    register(registry, host, resync_seconds=host.config.resync_seconds)
    return registry


async def operate(
    api_client: client.ApiClient,
    config: OperatorConfig | None = None,
    *,
    peering_name: str | None = None,
    priority: int = 0,
    liveness_endpoint: str | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    host: ControllerHost | None = None,
) -> None:
    """Run until ``stop_flag`` is set (or a signal arrives when run in the main thread)."""
    host = host or ControllerHost(api_client, config)
    registry = build_registry(host, connection_info(api_client.configuration))
    await kopf.operator(
        registry=registry,
        settings=operator_settings(peering_name=peering_name, priority=priority),
        clusterwide=True,
        standalone=peering_name is None,
        peering_name=peering_name,
        priority=priority,
        liveness_endpoint=liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        memo=kopf.Memo(),
    )
