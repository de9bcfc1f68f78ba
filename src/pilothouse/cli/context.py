"""Shared CLI plumbing: the client for ``--server`` (or a cluster's, for ``--kubeconfig``/``--context``),
consoles, and turning errors into exit codes.

Every command fails the same way: one line per problem on stderr, non-zero exit, never a traceback for
an error the user can fix.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import typer
from rich.console import Console

from pilothouse.api.errors import ManifestError
from pilothouse.client import ApiError, PilothouseClient
from pilothouse.client.waiting import WaitFailed
from pilothouse.settings import default_server_url


def _console(stderr: bool = False) -> Console:
    """Like kubectl, never wrap tables when output goes to a pipe or file (Rich would assume 80 columns)."""
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=320)
    return console


out = _console()
err = _console(stderr=True)


@dataclass
class CliState:
    server: str | None = None
    kubeconfig: str | None = None
    context: str | None = None

    @property
    def cluster(self) -> bool:
        """``--kubeconfig`` or ``--context`` was given: talk to a Kubernetes cluster, not ``pilothouse up``."""
        return bool(self.kubeconfig or self.context)

    def client(self) -> PilothouseClient:
        if self.cluster:
            from pilothouse.client.kube import KubeClient  # imports the Kubernetes client only when needed

            return KubeClient.from_kubeconfig(self.kubeconfig, self.context)
        return PilothouseClient(self.server or default_server_url())


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def handle_errors() -> Iterator[None]:
    """Map expected failures to one clear stderr message and exit code 1."""
    try:
        yield
    except ManifestError as exc:
        prefix = f"{exc.source}: " if exc.source else ""
        for problem in exc.problems:
            err.print(f"error: {prefix}{problem}", markup=False)
        raise typer.Exit(1) from None
    except ApiError as exc:
        if exc.causes:
            for cause in exc.causes:
                field = cause.get("field", "")
                err.print(f"error: {field + ': ' if field else ''}{cause.get('message', '')}", markup=False)
        else:
            err.print(f"error: {exc.message}", markup=False)
        raise typer.Exit(1) from None
    except WaitFailed as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: run a command body under ``handle_errors``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with handle_errors():
            return fn(*args, **kwargs)

    return wrapper
