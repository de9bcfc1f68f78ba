"""The Kubernetes backend: the Store contract on our custom resources in the Kubernetes API.

``KubeStore(api_client)`` talks to the API server with the official ``kubernetes`` client; it is the only
place (with ``runtime.kubernetes``) that imports it.
"""

from pilothouse.store.kube.store import KubeStore

__all__ = ["KubeStore"]
