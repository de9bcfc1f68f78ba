"""The typed HTTP client of the control plane: the CLI, the demo and (later) the web UI use only this."""

from pilothouse.client.errors import ApiError, ServerUnreachable
from pilothouse.client.http import ApplyResult, PilothouseClient

__all__ = ["ApiError", "ApplyResult", "PilothouseClient", "ServerUnreachable"]
