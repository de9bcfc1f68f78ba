"""Benchmarks of the foundation: apply-to-Ready and the gateway on a real ``pilothouse up``."""
