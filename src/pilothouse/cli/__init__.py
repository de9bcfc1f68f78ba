"""The ``pilothouse`` command: kubectl-like verbs over the HTTP client, one module per command group."""
