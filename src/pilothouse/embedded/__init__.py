"""The embedded control plane: store, runtime, controllers, API server and gateway in one process.

This is the composition root — the only place that picks concrete backends (SQLite store, local
process runtime). Everything it wires together depends on protocols.
"""
