"""Kubernetes-style events: what happened to an object and why, shown by ``describe``.

Events are the user's timeline ("ReplicaStarted", "ModelLoadFailed"); repeated events are folded into
one row with a count, as Kubernetes does, so a crash loop does not flood the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from pilothouse.api.meta import StrictModel, utcnow


class ObjectReference(StrictModel):
    kind: str
    namespace: str
    name: str
    uid: str | None = None


class Event(StrictModel):
    involvedObject: ObjectReference
    type: Literal["Normal", "Warning"] = "Normal"
    reason: str
    message: str
    count: int = 1
    firstTimestamp: datetime = Field(default_factory=utcnow)
    lastTimestamp: datetime = Field(default_factory=utcnow)
    source: str = "pilothouse"
