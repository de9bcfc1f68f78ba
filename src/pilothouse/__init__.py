"""Pilothouse: an internal developer platform for AI workloads.

A data scientist declares a ``ModelEndpoint`` in a small manifest; the control plane turns it into
running, versioned model servers behind one URL. See ``docs/architecture.md`` for the layers.
"""

__version__ = "0.1.0"
