"""The Kubernetes backend: our resources as native objects on a cluster.

``builders`` are pure functions from our pydantic resources to plain-dict manifests (no Kubernetes client:
dicts are what ``kubectl``, server-side apply and our tests all speak). ``bundle`` lays the install bundle
out as files for ``kubectl apply -k``. The module that talks to an API server (the applier) will live
here too, and is the only one allowed to import the ``kubernetes`` client.
"""
