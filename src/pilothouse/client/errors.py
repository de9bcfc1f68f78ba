"""Errors a client call can end in, carrying the server's Kubernetes ``Status`` reason and field causes."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self, code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None
    ) -> None:
        self.code = code
        self.reason = reason
        self.message = message
        self.causes = causes or []
        super().__init__(message)

    @classmethod
    def from_response(cls, code: int, body: Any, fallback: str) -> ApiError:
        if isinstance(body, dict) and body.get("kind") == "Status":
            causes = (body.get("details") or {}).get("causes") or []
            return cls(code, str(body.get("reason", "")), str(body.get("message", fallback)), causes)
        if isinstance(body, dict) and "detail" in body:  # FastAPI's own request validation errors
            detail = body["detail"]
            if isinstance(detail, list):
                causes = [
                    {
                        "field": ".".join(str(p) for p in d.get("loc", [])[1:]),
                        "message": str(d.get("msg", "")),
                    }
                    for d in detail
                    if isinstance(d, dict)
                ]
                return cls(
                    code, "Invalid", "; ".join(f"{c['field']}: {c['message']}" for c in causes), causes
                )
            return cls(code, "Error", str(detail))
        return cls(code, "Error", fallback)


class ServerUnreachable(ApiError):
    def __init__(self, url: str, detail: str) -> None:
        super().__init__(
            0,
            "Unreachable",
            f"cannot reach the Pilothouse server at {url} ({detail}); is `pilothouse up` running?",
        )


class UnreadableResponse(ApiError):
    """The server answered with an object this client's models reject: the two are different versions,
    or the stored object predates a rule the client now checks."""

    def __init__(self, kind: str, name: str, problem: str) -> None:
        super().__init__(
            0,
            "UnreadableResponse",
            f"the server sent {kind} {name!r}, which this client cannot read ({problem}); "
            "are the client and the server the same version? (`pilothouse version`)",
        )
