"""Builders shared by the store tests."""

from __future__ import annotations

from typing import Any

from pilothouse.api.modelendpoint import ModelEndpoint

KIND = "ModelEndpoint"


def endpoint(
    name: str = "iris",
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    uri: str = "/m/model.joblib",
    **extra: Any,
) -> ModelEndpoint:
    """A minimal valid ModelEndpoint, the way a user would write it."""
    return ModelEndpoint.model_validate(
        {
            "apiVersion": "pilothouse.dev/v1alpha1",
            "kind": "ModelEndpoint",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"model": {"uri": uri}},
            **extra,
        }
    )
