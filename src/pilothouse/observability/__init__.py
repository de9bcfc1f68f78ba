"""Observability plumbing shared by every Pilothouse process: structured logs, tracing, GPU telemetry.

Everything here is cheap to import and does nothing on import: the model server imports :mod:`.logs` and
:mod:`.tracing` on its start-up path, so neither may pull in the OpenTelemetry SDK. The SDK is imported
only by :mod:`.otel`, and only once tracing is switched on (``PILOTHOUSE_OTLP_ENDPOINT`` or
``PILOTHOUSE_TRACE_FILE``). No module here imports the control plane (store, controllers, runtime,
server); the import-linter contract ``observability-is-a-leaf`` keeps it that way.
"""
