"""Connecting to a cluster from a kubeconfig, and the API's failures as exceptions of our own.

The CLI's cluster client (``pilothouse.client.kube``) must not import the official client (only the
Kubernetes store and runtime may), so what it needs of it lives here:

- ``connect(kubeconfig, context)``: an ``ApiClient`` from a kubeconfig file (``None``: ``$KUBECONFIG``,
  else ``~/.kube/config``) and a context (``None``: the file's current context), as kubectl resolves
  them. A missing file or an unknown context is a ``ClusterConfigError``.
- ``translated(server)``: a context manager turning the client's ``ApiException`` into
  ``ClusterApiError`` (HTTP status plus the parsed ``Status`` body, so the caller keeps ``reason`` and
  the field ``causes``) and transport failures into ``ClusterUnreachable``.
- ``server_url``/``server_version``: what ``pilothouse version`` prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from kubernetes import client
from kubernetes import config as kube_config


class ClusterConfigError(Exception):
    """The kubeconfig cannot be used: missing, malformed, or without the requested context."""


class ClusterApiError(Exception):
    """The API server answered with an error: ``code`` and its ``Status`` body (empty when not JSON)."""

    def __init__(self, code: int, status: dict[str, Any], message: str) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


class ClusterUnreachable(Exception):
    def __init__(self, server: str, detail: str) -> None:
        self.server = server
        self.detail = detail
        super().__init__(f"cannot reach the Kubernetes API at {server} ({detail})")


def connect(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    try:
        api: client.ApiClient = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context
        )
    except (kube_config.ConfigException, OSError, ValueError) as exc:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise ClusterConfigError(f"cannot use the kubeconfig {where}: {exc}") from exc
    return api


def server_url(api: client.ApiClient) -> str:
    return str(api.configuration.host)


def server_version(api: client.ApiClient) -> str:
    """The API server's ``gitVersion`` (``v1.33.0``)."""
    with translated(server_url(api)):
        info: Any = client.VersionApi(api).get_code(_request_timeout=10)
    return str(info.git_version)


def _status(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


@contextmanager
def translated(server: str | Callable[[], str]) -> Iterator[None]:
    """``server`` (or a function returning it, read only on failure) names the cluster in messages."""
    try:
        yield
    except ApiException as exc:
        status = _status(exc)
        message = str(status.get("message") or exc.reason or f"HTTP {exc.status}")
        raise ClusterApiError(int(exc.status or status.get("code") or 500), status, message) from exc
    except urllib3.exceptions.HTTPError as exc:
        where = server if isinstance(server, str) else server()
        raise ClusterUnreachable(where, type(exc).__name__) from exc
