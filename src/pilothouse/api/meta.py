"""The Kubernetes-style envelope shared by every kind: ``apiVersion``, ``kind``, ``metadata``, ``status``.

Users already know this shape from ``kubectl``; keeping it means the same manifest works in embedded
mode and, unchanged, as a custom resource on a cluster. Server-set fields (uid, resourceVersion,
generation, creationTimestamp) are accepted on input so a ``get -o yaml`` round-trips, but the store
owns them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

GROUP = "pilothouse.dev"
VERSION = "v1alpha1"
API_VERSION: Final = "pilothouse.dev/v1alpha1"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def validate_dns1123_label(value: str) -> str:
    """Names become process names, URLs and (on Kubernetes) Service names: DNS-1123 labels."""
    if len(value) > 63:
        raise ValueError(f"must be no more than 63 characters (got {len(value)})")
    if not _DNS1123_LABEL.match(value):
        raise ValueError(
            f"invalid name {value!r}: must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character"
        )
    return value


def _validate_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        raise ValueError(f"invalid label key prefix {prefix!r}")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        raise ValueError(f"invalid label key {key!r}")


def validate_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        _validate_label_key(key)
        if len(value) > 63 or not _LABEL_NAME.match(value):
            raise ValueError(f"invalid label value {value!r} for key {key!r}")
    return labels


DNSLabel = Annotated[str, AfterValidator(validate_dns1123_label)]
Labels = Annotated[dict[str, str], AfterValidator(validate_labels)]


class StrictModel(BaseModel):
    """Unknown fields are an error, never silently dropped: a typo must not deploy the wrong thing."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, frozen=False)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class ObjectMeta(StrictModel):
    name: DNSLabel
    namespace: DNSLabel = "default"
    labels: Labels = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: datetime | None = None


class ClusterObjectMeta(StrictModel):
    """Metadata of a cluster-scoped object (a ``Team``): no namespace — the team *is* one."""

    name: DNSLabel
    labels: Labels = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: datetime | None = None

    @property
    def namespace(self) -> str:
        """Cluster-scoped objects are stored under the empty namespace."""
        return ""


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StrictModel):
    """A Kubernetes-style condition: one aspect of an object's state and *why* it is so."""

    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    lastTransitionTime: datetime = Field(default_factory=utcnow)
    observedGeneration: int | None = None


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """Replace the condition of the same type; keep its transition time if the status did not change."""
    out: list[Condition] = []
    replaced = False
    for old in conditions:
        if old.type == new.type:
            if old.status == new.status:
                new = new.model_copy(update={"lastTransitionTime": old.lastTransitionTime})
            out.append(new)
            replaced = True
        else:
            out.append(old)
    if not replaced:
        out.append(new)
    return out


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)
