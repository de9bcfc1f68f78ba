"""The operator: kopf hosts the same reconcilers that the embedded control plane runs.

``host.py`` builds the reconcilers on the Kubernetes store and runtime and runs one key at a time;
``handlers.py`` registers kopf handlers that drive it (changes, deletion behind a finalizer, timers,
child objects); ``routes.py`` publishes routes into the gateway's ConfigMap; ``__main__`` is the entry
point (``python -m pilothouse.operator``). Importing this package registers nothing: handlers go into a
registry built by a function, so tests can run several operators side by side.
"""
