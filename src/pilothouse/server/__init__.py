"""The control plane's HTTP API: Kubernetes-style REST paths as thin routers over the store and runtime."""
