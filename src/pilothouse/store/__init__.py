"""Where desired and observed state lives. ``protocol`` is the contract; ``sql`` is the embedded backend.

Controllers and the server depend only on the protocol, so the Kubernetes backend (custom resources in
the API server) can replace the SQL store without touching them.
"""
